"""Stress classification from ECG-like signals.

Each window is `window_s` seconds of a synthetic single-lead ECG at 250 Hz, made with numpy from a seeded
generator: R peaks (narrow Gaussians) at beat times drawn from RR intervals whose mean and variability depend on
the hidden label (stressed: faster and steadier heart), on a wandering baseline with noise. Per window the job
detects the R peaks, derives heart-rate features (HR, SDNN, RMSSD, pNN50-like share), trains a nearest-centroid
classifier on the first `train` windows (standardised features) and predicts the labels of the later ones.

Input: {"windows": 150, "train": 40, "window_s": 20, "seed": 3}  (150 windows: under a second).
Output: windows, predicted counts, confusion counts and the accuracy rounded to 4 places.
"""

import math

import numpy as np

FS = 250


def synth_window(rng, stressed, window_s):
    n = int(window_s * FS)
    mean_rr = 0.62 if stressed else 0.85
    sd_rr = 0.03 if stressed else 0.045
    mean_rr += rng.normal(0.0, 0.09)
    beats = []
    t = rng.uniform(0.1, 0.5)
    while t < window_s - 0.1:
        beats.append(t)
        t += max(0.3, rng.normal(mean_rr, sd_rr))
    tt = np.arange(n) / FS
    sig = 0.15 * np.sin(2 * math.pi * rng.uniform(0.15, 0.35) * tt)
    sig += rng.normal(0.0, 0.05, n)
    for b in beats:
        i = int(b * FS)
        lo, hi = max(0, i - 8), min(n, i + 9)
        k = np.arange(lo, hi)
        sig[lo:hi] += rng.uniform(0.9, 1.2) * np.exp(-(((k - b * FS) / 2.5) ** 2))
    return sig


def r_peaks(sig):
    """Indices of R peaks: local maxima over an adaptive threshold, at least 0.25 s apart."""
    base = np.convolve(sig, np.ones(FS) / FS, mode="same")
    x = sig - base
    thr = 0.5 * np.max(x)
    cand = np.nonzero((x[1:-1] > thr) & (x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:]))[0] + 1
    peaks = []
    for c in cand.tolist():
        if not peaks or c - peaks[-1] > FS // 4:
            peaks.append(c)
        elif x[c] > x[peaks[-1]]:
            peaks[-1] = c
    return peaks


def features(peaks):
    rr = np.diff(np.asarray(peaks, dtype=np.float64)) / FS
    if rr.size < 3:
        return [0.0, 0.0, 0.0, 0.0]
    d = np.diff(rr)
    hr = 60.0 / float(np.mean(rr))
    sdnn = float(np.std(rr)) * 1000.0
    rmssd = float(np.sqrt(np.mean(d * d))) * 1000.0
    pnn = float(np.mean(np.abs(d) > 0.05))
    return [hr, sdnn, rmssd, pnn]


def main(x):
    x = x or {}
    windows = int(x.get("windows", 150))
    train = max(2, min(int(x.get("train", 40)), windows - 1))
    window_s = float(x.get("window_s", 20))
    rng = np.random.default_rng(int(x.get("seed", 3)))
    labels = []
    feats = []
    for w in range(windows):
        stressed = bool(rng.random() < 0.4) if w >= 2 else w == 1  # both classes in training
        sig = synth_window(rng, stressed, window_s)
        feats.append(features(r_peaks(sig)))
        labels.append(1 if stressed else 0)
    f = np.asarray(feats)
    mu = f[:train].mean(axis=0)
    sd = f[:train].std(axis=0) + 1e-9
    z = (f - mu) / sd
    y = np.asarray(labels)
    centroids = [z[:train][y[:train] == k].mean(axis=0) for k in (0, 1)]
    confusion = [[0, 0], [0, 0]]
    predicted = [0, 0]
    for i in range(train, windows):
        d0 = float(np.sum((z[i] - centroids[0]) ** 2))
        d1 = float(np.sum((z[i] - centroids[1]) ** 2))
        p = 1 if d1 < d0 else 0
        predicted[p] += 1
        confusion[labels[i]][p] += 1
    tested = windows - train
    correct = confusion[0][0] + confusion[1][1]
    return {
        "windows": windows,
        "tested": tested,
        "predicted": {"calm": predicted[0], "stressed": predicted[1]},
        "confusion": confusion,
        "accuracy": round(correct / tested, 4) if tested else None,
        "mean_hr": round(float(np.mean(f[:, 0])), 2),
    }
