"""NeuroKit2: simulate respiration with a fixed seed, process it (clean, peaks, rate, amplitude), RRV features;
also an EDA simulation and its phasic/tonic decomposition."""
import neurokit2 as nk
import numpy as np


def main(inp):
    return [window(inp["seconds"], 12 + w, w) for w in range(inp["windows"])]


def window(seconds, rate, seed):
    rsp = nk.rsp_simulate(duration=seconds, sampling_rate=100, respiratory_rate=rate, random_state=7 + seed)
    signals, info = nk.rsp_process(rsp, sampling_rate=100)
    rrv = nk.rsp_rrv(signals, info, sampling_rate=100)
    eda = nk.eda_simulate(duration=seconds // 2, sampling_rate=50, scr_number=4, random_state=3 + seed)
    eda_signals, eda_info = nk.eda_process(eda, sampling_rate=50)
    rate = signals["RSP_Rate"].to_numpy()
    return {
        "peaks": [int(p) for p in info["RSP_Peaks"][:20]],
        "troughs": [int(p) for p in info["RSP_Troughs"][:20]],
        "rate": [round(float(rate.mean()), 8), round(float(rate.std()), 8)],
        "amplitude": round(float(signals["RSP_Amplitude"].mean()), 8),
        "rrv": {k: round(float(v), 8) for k, v in rrv.iloc[0].items() if v == v},
        "scr": [int(p) for p in eda_info["SCR_Peaks"]],
        "tonic": round(float(eda_signals["EDA_Tonic"].mean()), 8),
    }
