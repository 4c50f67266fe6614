"""scikit-learn: the stress classifier. A StandardScaler + SVC pipeline on the shipped features, a fixed
train/test split, cross-validation and a small grid search (joblib's sequential Parallel gathers the fits with
`list(output)`: resumable inside each fit, the list found where C holds it), and the same search written out as
loops over folds (resumable between and inside the estimators' Python code)."""
import csv
import os

from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def load():
    with open(os.path.join(DATA, "stress", "train_features.csv")) as f:
        rows = list(csv.DictReader(f))
    label = "label" if "label" in rows[0] else list(rows[0])[-1]
    cols = [c for c in rows[0] if c != label]
    return [[float(r[c]) for c in cols] for r in rows], [int(float(r[label])) for r in rows], cols


def main(inp):
    X, y, cols = load()
    manual = []
    for C, r in [(C, r) for r in range(inp["rounds"]) for C in inp["Cs"]]:
        scores = []
        for tr, te in StratifiedKFold(4, shuffle=True, random_state=r).split(X, y):
            scaler = StandardScaler().fit([X[i] for i in tr])
            svc = SVC(kernel="rbf", C=C).fit(scaler.transform([X[i] for i in tr]), [y[i] for i in tr])
            scores.append(svc.score(scaler.transform([X[i] for i in te]), [y[i] for i in te]))
        manual.append(round(sum(scores) / len(scores), 12))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=inp["seed"], stratify=y)
    pipe = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, gamma="scale"))
    pipe.fit(X_tr, y_tr)
    pred = pipe.predict(X_te).tolist()
    cv = cross_val_score(pipe, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    grid = GridSearchCV(pipe, {"svc__C": inp["Cs"], "svc__kernel": ["rbf", "linear"]}, cv=4)
    grid.fit(X, y)
    return {
        "manual": manual,
        "cols": cols,
        "pred": pred,
        "truth": list(y_te),
        "cv": [round(float(s), 12) for s in cv],
        "best": sorted(grid.best_params_.items()),
        "best_score": round(float(grid.best_score_), 12),
        "support": grid.best_estimator_[-1].n_support_.tolist(),
    }
