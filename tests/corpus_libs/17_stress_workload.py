"""The paper's stress workload end to end: features from simulated ECG+RSP windows (NeuroKit2), then an SVM
trained on the shipped features classifies each window (scikit-learn)."""
import csv
import os

import neurokit2 as nk
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
COLS = ["HR", "HRV_RMSSD", "HRV_SDNN", "RR", "RRV_RMSSD", "RRV_SDBB"]


def features(seconds, hr, rr, seed):
    ecg = nk.ecg_simulate(duration=seconds, sampling_rate=250, heart_rate=hr, random_state=seed)
    rsp = nk.rsp_simulate(duration=seconds, sampling_rate=250, respiratory_rate=rr, random_state=seed)
    e, ei = nk.ecg_process(ecg, sampling_rate=250)
    r, ri = nk.rsp_process(rsp, sampling_rate=250)
    hrv = nk.hrv_time(ei["ECG_R_Peaks"], sampling_rate=250)
    rrv = nk.rsp_rrv(r, ri, sampling_rate=250)
    return [
        float(e["ECG_Rate"].mean()),
        float(hrv["HRV_RMSSD"].iloc[0]),
        float(hrv["HRV_SDNN"].iloc[0]),
        float(r["RSP_Rate"].mean()),
        float(rrv["RRV_RMSSD"].iloc[0]),
        float(rrv["RRV_SDBB"].iloc[0]),
    ]


def main(inp):
    with open(os.path.join(DATA, "stress", "train_features.csv")) as f:
        rows = list(csv.DictReader(f))
    X = np.array([[float(r[c]) for c in COLS] for r in rows])
    y = np.array([int(float(r["stressed"])) for r in rows])
    clf = make_pipeline(StandardScaler(), SVC(C=1.0, probability=False)).fit(X, y)
    out = []
    for w, (hr, rr) in enumerate(inp["windows"]):
        f = features(inp["seconds"], hr, rr, 100 + w)
        out.append([int(clf.predict([f])[0]), [round(v, 6) for v in f], round(float(clf.decision_function([f])[0]), 9)])
    return out
