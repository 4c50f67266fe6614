"""scikit-learn model selection as it is usually written: GridSearchCV over an SVC, cross_val_score and
cross_validate of the best model. joblib's sequential Parallel runs every fit inside a generator that
`list(output)` consumes from C, so nearly every instant of this program is under a C call filling a list."""
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.svm import SVC


def main(inp):
    X, y = make_classification(n_samples=inp["n"], n_features=12, random_state=inp["seed"])
    grid = GridSearchCV(SVC(), {"C": inp["Cs"], "kernel": ["rbf", "linear", "poly"]}, cv=5)
    grid.fit(X, y)
    best = SVC(**grid.best_params_)
    cv = cross_val_score(best, X, y, cv=5)
    more = cross_validate(best, X, y, cv=4, scoring=["accuracy", "f1"])
    return {
        "best": sorted(grid.best_params_.items()),
        "score": round(float(grid.best_score_), 12),
        "ranks": grid.cv_results_["rank_test_score"].tolist(),
        "cv": [round(float(s), 12) for s in cv],
        "f1": [round(float(s), 12) for s in more["test_f1"]],
    }
