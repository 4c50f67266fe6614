"""Benchmark workload (stress): NeuroKit2 features (heart rate and its variability) from simulated ECG windows,
classified by an SVM (scikit-learn) trained on the shipped feature table, as the paper's stress app does."""
import csv
import os

import neurokit2 as nk
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

# The test data: `data/` beside this file (where the benchmark puts it), else the repository's tests/data.
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = next(d for d in (os.path.join(HERE, "data"), os.path.join(HERE, "..", "..", "..", "tests", "data"))
            if os.path.isdir(d))

RATE = 250
with open(os.path.join(DATA, "stress", "train_features.csv")) as f:
    rows = list(csv.DictReader(f))
COLS = ["HR", "HRV_RMSSD", "HRV_SDNN"]
X = np.array([[float(r[c]) for c in COLS] for r in rows])
Y = np.array([int(float(r["stressed"])) for r in rows])
MODEL = make_pipeline(StandardScaler(), SVC()).fit(X, Y)
ECG = nk.ecg_simulate(duration=240, sampling_rate=RATE, heart_rate=75, random_state=7)
__microlambda_static__ = ("X", "Y", "MODEL", "ECG", "rows")


def main(inp):
    kept = []
    labels = []
    for i in range(inp["iters"]):
        start = (i * 30 * RATE) % (len(ECG) - 60 * RATE)
        window = ECG[start:start + 60 * RATE]
        signals, info = nk.ecg_process(window, sampling_rate=RATE)
        peaks = info["ECG_R_Peaks"]
        hr = float(np.mean(signals["ECG_Rate"]))
        hrv = nk.hrv_time(peaks, sampling_rate=RATE)
        feats = [hr, float(hrv["HRV_RMSSD"].iloc[0]), float(hrv["HRV_SDNN"].iloc[0])]
        kept = (kept + [feats])[-3:]
        labels.append(int(MODEL.predict(np.array([feats]))[0]))
    return labels[-1] if labels else None
