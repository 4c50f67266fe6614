"""NeuroKit2: simulate an ECG with a fixed seed, process it (clean, R-peaks, rate, quality), HRV time and
frequency features."""
import neurokit2 as nk
import numpy as np


def main(inp):
    ecg = nk.ecg_simulate(duration=inp["seconds"], sampling_rate=250, heart_rate=72, random_state=42)
    signals, info = nk.ecg_process(ecg, sampling_rate=250)
    peaks = info["ECG_R_Peaks"]
    hrv = nk.hrv_time(peaks, sampling_rate=250)
    freq = nk.hrv_frequency(peaks, sampling_rate=250)
    rate = signals["ECG_Rate"].to_numpy()
    return {
        "n": int(len(signals)),
        "peaks": [int(p) for p in peaks[:30]],
        "npeaks": int(len(peaks)),
        "rate": [round(float(rate.mean()), 8), round(float(rate.min()), 8), round(float(rate.max()), 8)],
        "quality": round(float(np.nanmean(signals["ECG_Quality"])), 8),
        "hrv": {k: round(float(v), 8) for k, v in hrv.iloc[0].items() if v == v},
        "hf": {k: round(float(v), 8) for k, v in freq.iloc[0].items() if v == v},
    }
