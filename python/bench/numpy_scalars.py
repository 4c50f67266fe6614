"""What saving numpy scalars costs the checkpoint pickler: a list of 7,500 `np.float64` (the shape NeuroKit2's
per-beat features and `[np.mean(w) for w in windows]` leave live), and the same with float32, int64 and bool
scalars mixed in, each pickled by plain `pickle` (numpy's own reduction: the dtype and the raw bytes through
`numpy.core.multiarray.scalar`), by the checkpoint pickler with numpy's reduction, and by the checkpoint pickler as
it is (a scalar as its type called on its Python value). Run in a worker (`_mlrs` registered):

    target/release/microlambda run python/bench/numpy_scalars.py:main --input '{"rounds": 15}'

Medians in ms, alternating."""
import io
import pickle
import sys
import time
import types


def main(inp):
    import numpy as np

    from microlambda_rt import pickler as P
    from microlambda_rt.state import _Job

    job = _Job(types.ModuleType("mlfn_bench_scalars"))
    states = {
        "7,500 np.float64": [np.float64(i * 0.37) for i in range(7500)],
        "7,500 mixed (f8, f4, i8, bool)": [t(i) for i in range(1875) for t in (np.float64, np.float32, np.int64,
                                                                               np.bool_)],
    }

    def ours(root, short):
        handlers = P._HANDLERS
        handlers.clear()
        saved = P._exact_numpy_scalar
        if not short:
            P._exact_numpy_scalar = lambda t: False
        try:
            buf = io.BytesIO()
            t = time.perf_counter()
            P._Pickler(buf, P._Capture(job, {})).dump(root)
            took = (time.perf_counter() - t) * 1e3
        finally:
            P._exact_numpy_scalar = saved
            handlers.clear()
        back = pickle.loads(buf.getvalue())
        assert all(type(a) is type(b) and a.tobytes() == b.tobytes() for a, b in zip(root, back))
        return took, len(buf.getvalue())

    def plain(root):
        t = time.perf_counter()
        data = pickle.dumps(root, protocol=5)
        return (time.perf_counter() - t) * 1e3, len(data)

    rows = []
    for name, root in states.items():
        runs = {"pickle": [], "ours, numpy's reduction": [], "ours": []}
        for _ in range(inp.get("rounds", 15)):
            runs["pickle"].append(plain(root))
            runs["ours, numpy's reduction"].append(ours(root, False))
            runs["ours"].append(ours(root, True))
        med = {k: sorted(x[0] for x in v)[len(v) // 2] for k, v in runs.items()}
        rows.append({"state": name, **{f"{k} ms": round(m, 2) for k, m in med.items()},
                     "ours / pickle": round(med["ours"] / med["pickle"], 2),
                     "bytes pickle": runs["pickle"][0][1], "bytes ours": runs["ours"][0][1]})
    print(file=sys.stderr)
    return rows
