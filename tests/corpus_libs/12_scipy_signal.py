"""scipy.signal: design Butterworth and FIR filters, filtfilt/sosfilt a noisy signal, find peaks, Welch PSD."""
import numpy as np
from scipy import signal


def main(inp):
    return [channel(c, inp["seconds"]) for c in range(inp["channels"])]


def channel(c, seconds):
    fs = 250.0
    t = np.arange(int(seconds * fs)) / fs
    rng = np.random.default_rng(5 + c)
    x = np.sin(2 * np.pi * 1.2 * t) + 0.4 * np.sin(2 * np.pi * 17 * t) + 0.2 * rng.standard_normal(t.size)
    b, a = signal.butter(4, [0.5, 8.0], btype="bandpass", fs=fs)
    y = signal.filtfilt(b, a, x)
    sos = signal.butter(6, 5.0, fs=fs, output="sos")
    z = signal.sosfiltfilt(sos, x)
    fir = signal.firwin(101, 3.0, fs=fs)
    w = signal.lfilter(fir, 1.0, x)
    peaks, props = signal.find_peaks(y, distance=int(fs * 0.4), prominence=0.3)
    f, pxx = signal.welch(x, fs=fs, nperseg=512)
    res = signal.resample_poly(z, 2, 5)
    return {
        "peaks": peaks[:40].tolist(),
        "npeaks": int(peaks.size),
        "prom": np.round(props["prominences"][:10], 9).tolist(),
        "dominant": [float(f[i]) for i in np.argsort(pxx)[-3:]],
        "y": np.round(y[::97], 9).tolist(),
        "z": round(float(np.abs(z).sum()), 6),
        "w": round(float(w.std()), 9),
        "res": [int(res.size), round(float(res.mean()), 9)],
    }
