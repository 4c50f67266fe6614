"""What keeping the identity of shared numbers costs the checkpoint pickler (`_mlrs.number_ids`, a
`persistent_id` the C pickler calls for every object it saves). Run in a worker, where `_mlrs` is registered:

    target/release/microlambda run python/bench/number_ids.py:main --input '{"rounds": 15}'

States, each pickled with cloudpickle's pickler (protocol 5, in-band) without the hook, with it keeping shared
numbers, and with it also keeping the ids of saved objects ("with ids": `number_ids(pickler)`, then `id_targets`
and, where it finds ids of objects saved after them, the second dump), alternating, medians in ms: many small
objects (the worst case: a hook call per object), a list of a million floats (one reference each: written by
value), floats shared between dicts and attributes (each kept as one object), ints that look like addresses and
are none, node ids the size of OpenStreetMap's, a deep copy's memo, ids of objects saved after them, and two
library states (a networkx graph, a fitted scikit-learn model with a pandas frame)."""
import io
import sys
import time

import cloudpickle


class Node:
    def __init__(self, i):
        self.name = f"n{i}"
        self.weight = i * 0.5 + 0.25
        self.edges = [i + 1, i + 2, i * 3]
        self.meta = {"x": i / 3.0, "y": i * 1.5, "tag": "t"}


def _library_states():
    """States the paper's workloads hold, where their libraries are installed (make setup-libs)."""
    try:
        import networkx as nx
        import numpy as np
        import pandas as pd
        from sklearn.svm import SVC
    except ImportError:
        return {}
    g = nx.grid_2d_graph(100, 100)
    for u, v, d in g.edges(data=True):
        d["length"] = (u[0] * 7 + v[1] * 13) % 97 + 0.5
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8))
    svm = SVC(probability=False).fit(x, (x[:, 0] > 0).astype(int))
    frame = pd.DataFrame({"hr": rng.normal(70, 5, 100_000), "rr": rng.normal(0.8, 0.1, 100_000)})
    return {"networkx graph (10k nodes, float lengths)": g, "fitted SVC + DataFrame": (svm, frame)}


def _id_states():
    """Ints that are ids of saved objects: a deep copy's memo (the originals saved first), and a cache keyed by
    ids of objects saved after it (the second dump)."""
    import copy

    orig = [Node(i) for i in range(20_000)]
    memo = {}
    copy.deepcopy(orig, memo)
    later = [Node(i) for i in range(2_000)]
    cache = {id(n): i for i, n in enumerate(later)}
    return {"deepcopy memo of 20k objects": (orig, memo), "2k ids of objects saved after": (cache, later)}


def _states():
    shared = [float(i) + 0.5 for i in range(100_000)]
    holders = []
    for i in range(0, len(shared), 2):
        n = Node(i)
        n.weight, n.meta["x"] = shared[i], shared[i]
        holders.append(n)
    return {
        "objects (20k, 5 attributes each)": [Node(i) for i in range(20_000)],
        "a list of 1M floats": [i * 0.5 + 0.25 for i in range(1_000_000)],
        "100k floats shared 3 ways": (shared, holders),
        "200k ints that look like addresses": [(0x7F00_0000_0000 + i * 4104) & ~7 for i in range(200_000)],
        "200k OSM-like node ids (10^9 to 10^10)": [1_000_000_000 + i * 45_000 for i in range(200_000)],
        **_id_states(),
        **_library_states(),
    }


def _dump(root, hook, ids=False):
    """One dump: no hook; the hook keeping shared numbers; the hook also keeping ids of saved objects (with the
    scan that finds ids of objects saved after them, and the second dump the capture then makes)."""
    buf = io.BytesIO()
    p = cloudpickle.Pickler(buf, protocol=5)
    rs = sys.modules["_mlrs"]
    if hook:
        p.persistent_id = rs.number_ids(p if ids else None)
    t = time.perf_counter()
    p.dump(root)
    if ids:
        known = rs.id_targets(p)
        if known:
            buf = io.BytesIO()
            p = cloudpickle.Pickler(buf, protocol=5)
            p.persistent_id = rs.number_ids(p, known)
            p.dump(root)
    return (time.perf_counter() - t) * 1e3, len(buf.getvalue())


def main(inp):
    rows = []
    for name, root in _states().items():
        off, on, ids = [], [], []
        for _ in range(inp.get("rounds", 15)):
            off.append(_dump(root, False))
            on.append(_dump(root, True))
            ids.append(_dump(root, True, ids=True))
        med = lambda xs: sorted(x[0] for x in xs)[len(xs) // 2]  # noqa: E731
        rows.append({"state": name, "without ms": round(med(off), 2), "with ms": round(med(on), 2),
                     "ratio": round(med(on) / med(off), 2), "with ids ms": round(med(ids), 2),
                     "ids ratio": round(med(ids) / med(off), 2), "bytes without": off[0][1],
                     "bytes with": on[0][1], "bytes with ids": ids[0][1]})
    return rows
