"""Histogram gradient boosting (scikit-learn's HistGradientBoosting), fitted for most of the run: its fit
holds a TreeGrower whose Splitter and HistogramBuilder keep typed memoryviews (and the tree nodes views of the
splitter's partition), which could not be saved, so every request waited for fit to return."""
import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor


def main(inp):
    X, y = make_regression(n_samples=inp["n"], n_features=12, noise=5.0, random_state=1)
    reg = HistGradientBoostingRegressor(max_iter=inp["iters"], max_leaf_nodes=15, early_stopping=False,
                                        random_state=0).fit(X, y)
    Xc, yc = make_classification(n_samples=inp["n"], n_features=10, n_informative=6, n_classes=3,
                                 random_state=2)
    Xc[::17, 3] = np.nan  # missing values go to their own bin
    clf = HistGradientBoostingClassifier(max_iter=inp["iters"] // 2, learning_rate=0.2, max_leaf_nodes=11,
                                         early_stopping=False, random_state=0).fit(Xc, yc)
    proba = clf.predict_proba(Xc[:5])
    return {
        "reg": [round(float(v), 6) for v in reg.predict(X[:6])],
        "reg_iters": int(reg.n_iter_),
        "proba": [[round(float(p), 8) for p in row] for row in proba],
        "acc": round(float(clf.score(Xc, yc)), 6),
    }
