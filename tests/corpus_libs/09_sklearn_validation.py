"""scikit-learn's input validation and estimator plumbing, as every fit/predict runs it: check_array / check_X_y
(through inspect.getattr_static), get_params/set_params/clone (inspect.signature), tags, repr."""
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y, column_or_1d


class Table:
    """A list-of-rows container such as a user might pass."""

    def __init__(self, rows):
        self.rows = rows

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.asarray(self.rows, dtype=dtype)

    def __len__(self):
        return len(self.rows)


def main(inp):
    rng = check_random_state(3)
    total = 0.0
    shapes = []
    for i in range(inp["rounds"]):
        rows = [[float((i * 7 + j * 3 + k) % 17) for k in range(4)] for j in range(20)]
        a = check_array(Table(rows), dtype="numeric", ensure_min_samples=2)
        X, y = check_X_y(rows, [r[0] * 2 - r[1] for r in rows], y_numeric=True)
        total += float(a.sum()) + float(column_or_1d(y).sum())
        shapes.append(a.shape[0] + X.shape[1])
    pipe = Pipeline([("poly", PolynomialFeatures(2)), ("scale", StandardScaler()), ("ridge", Ridge(alpha=0.5))])
    models = []
    for alpha in inp["alphas"]:
        m = clone(pipe).set_params(ridge__alpha=alpha, scale=MinMaxScaler() if alpha > 1 else StandardScaler())
        X = rng.uniform(-1, 1, size=(60, 3))
        m.fit(X, X[:, 0] ** 2 - X[:, 1] + 0.1 * X[:, 2])
        check_is_fitted(m)
        models.append([alpha, round(float(m.score(X, X[:, 0] ** 2 - X[:, 1])), 10), sorted(m.get_params(deep=False))])
    return {"total": total, "shapes": sum(shapes), "models": models, "repr": repr(clone(pipe))}
