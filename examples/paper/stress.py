"""Session workload (stress), the paper's stress app: each request is 30 s of ECG and respiration (simulated with
NeuroKit2 at 250 Hz); the session extracts the window's features (HR, HRV RMSSD/SDNN, RR, RRV RMSSD/SDBB),
classifies the last two minutes (this window and the 90 s before it) with an SVM (scikit-learn) trained on
`tests/data/stress/train_features.csv` when the session opens, and replies the stress label. State kept between
requests: the model and the last 90 s of features (three windows).

Open with `"entry": "stress"` (input: null). A request is {"hr": 72, "rr": 15, "seed": 1}: the heart and
respiratory rates the window is simulated at, and its random seed."""
import csv
import os
import warnings

import neurokit2 as nk
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

# The test data: $MICROLAMBDA_DATA, else tests/data under the working directory (a node started from the
# repository), else the repository's tests/data beside this file (run in place).
DATA = next(
    d
    for d in (
        os.environ.get("MICROLAMBDA_DATA", ""),
        os.path.join(os.getcwd(), "tests", "data"),
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data"),
    )
    if d and os.path.isdir(os.path.join(d, "stress"))
)
# NeuroKit2 warns, on every 30 s window, that it is too short for measures this workload does not use.
warnings.filterwarnings("ignore", module="neurokit2")
COLS = ["HR", "HRV_RMSSD", "HRV_SDNN", "RR", "RRV_RMSSD", "RRV_SDBB"]
RATE = 250
WINDOW_S = 30
KEEP = 3  # windows of features kept: the last 90 s


def features(hr, rr, seed):
    """The six features of one window of ECG + respiration simulated at these rates."""
    ecg = nk.ecg_simulate(duration=WINDOW_S, sampling_rate=RATE, heart_rate=hr, random_state=seed)
    rsp = nk.rsp_simulate(duration=WINDOW_S, sampling_rate=RATE, respiratory_rate=rr, random_state=seed)
    e, ei = nk.ecg_process(ecg, sampling_rate=RATE)
    r, ri = nk.rsp_process(rsp, sampling_rate=RATE)
    hrv = nk.hrv_time(ei["ECG_R_Peaks"], sampling_rate=RATE)
    rrv = nk.rsp_rrv(r, ri, sampling_rate=RATE)
    return [
        float(e["ECG_Rate"].mean()),
        float(hrv["HRV_RMSSD"].iloc[0]),
        float(hrv["HRV_SDNN"].iloc[0]),
        float(r["RSP_Rate"].mean()),
        float(rrv["RRV_RMSSD"].iloc[0]),
        float(rrv["RRV_SDBB"].iloc[0]),
    ]


def train():
    """The SVM, fitted on the shipped feature table (in a function of its own, so that the session's frame keeps
    no file object, which cannot be checkpointed, even closed), and the number of rows it learnt from."""
    with open(os.path.join(DATA, "stress", "train_features.csv")) as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in COLS] for r in rows])
    y = np.array([int(float(r["stressed"])) for r in rows])
    return make_pipeline(StandardScaler(), SVC(C=1.0)).fit(x, y), len(rows)


def stress(_opening):
    model, rows = train()
    kept = []  # the features of the last 90 s, one row per window
    req = yield {"trained_on": rows}
    while True:
        feats = features(req["hr"], req["rr"], req["seed"])
        last_2_min = np.mean(np.array(kept + [feats]), axis=0)
        stressed = int(model.predict(last_2_min.reshape(1, -1))[0])
        kept = (kept + [feats])[-KEEP:]
        req = yield {
            "label": "stressed" if stressed else "calm",
            "windows": len(kept),
            "score": round(float(model.decision_function(last_2_min.reshape(1, -1))[0]), 6),
            "features": [round(v, 6) for v in feats],
        }
