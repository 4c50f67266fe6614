"""scikit-learn: KNN, logistic regression, a random forest and k-means on generated data with fixed seeds."""
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier


def main(inp):
    X, y = make_classification(n_samples=inp["n"], n_features=8, n_informative=5, n_classes=3, random_state=4)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=7)
    out = {}
    for name, model in [
        ("knn", KNeighborsClassifier(n_neighbors=7)),
        ("logreg", LogisticRegression(max_iter=500)),
        ("forest", RandomForestClassifier(n_estimators=inp["trees"], random_state=0, n_jobs=1)),
    ]:
        model.fit(X_tr, y_tr)
        pred = model.predict(X_te)
        out[name] = {
            "acc": round(float(accuracy_score(y_te, pred)), 12),
            "f1": round(float(f1_score(y_te, pred, average="macro")), 12),
            "cm": confusion_matrix(y_te, pred).tolist(),
            "first": pred[:20].tolist(),
        }
    dist, idx = KNeighborsClassifier(n_neighbors=3).fit(X_tr, y_tr).kneighbors(X_te[:5])
    out["neighbours"] = idx.tolist()
    B, _ = make_blobs(n_samples=inp["n"], centers=4, random_state=2)
    km = KMeans(n_clusters=4, n_init=3, random_state=0).fit(B)
    out["kmeans"] = sorted(round(float(v), 6) for v in km.cluster_centers_.ravel())
    out["inertia"] = round(float(km.inertia_), 6)
    return out
