"""scipy.spatial: KD-tree nearest neighbours and ball queries, distance matrices, convex hull, Delaunay;
scipy.sparse.csgraph shortest paths on the same points."""
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import ConvexHull, Delaunay, KDTree, cKDTree, distance


def main(inp):
    return [one(r, inp["n"], inp["q"]) for r in range(inp["rounds"])]


def one(r, n, q):
    rng = np.random.default_rng(13 + r)
    pts = rng.uniform(0, 100, size=(n, 2))
    queries = rng.uniform(0, 100, size=(q, 2))
    tree = cKDTree(pts)
    d, i = tree.query(queries, k=3)
    balls = tree.query_ball_point(queries[:50], r=6.0)
    pairs = KDTree(pts).query_pairs(r=2.0)
    hull = ConvexHull(pts)
    tri = Delaunay(pts[:400])
    edges = set()
    for s in tri.simplices:
        for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2])):
            edges.add((min(a, b), max(a, b)))
    edges = sorted(edges)
    w = [float(np.hypot(*(pts[a] - pts[b]))) for a, b in edges]
    m = csr_matrix((w, ([a for a, _ in edges], [b for _, b in edges])), shape=(400, 400))
    sp = dijkstra(m, directed=False, indices=[0, 1, 2])
    dm = distance.cdist(queries[:20], pts[:30], "cityblock")
    return {
        "nn": i[:30].tolist(),
        "dist": np.round(d[:30], 9).tolist(),
        "balls": [sorted(b) for b in balls[:10]],
        "nballs": sum(len(b) for b in balls),
        "pairs": len(pairs),
        "hull": sorted(hull.vertices.tolist()),
        "area": round(float(hull.volume), 8),
        "ncomp": int(connected_components(m, directed=False)[0]),
        "sp": np.round(sp[:, ::40], 8).tolist(),
        "cityblock": round(float(dm.sum()), 6),
    }
