"""What the checkpoint pickler costs on the objects a pandas-heavy state holds most (NeuroKit2's per-window
frames, the small frames of its per-beat results, the views and small arrays of signal code), against plain
`pickle.dumps` and against the runtime package of an earlier commit (`"before"`: its files, read with `git show`
into a temporary directory and imported as a package of another name, beside the one this worker embeds). Run in
a worker from the repository's root (`_mlrs` registered):

    target/release/microlambda run python/bench/pickle_pandas.py:main --input '{"before": "e2d0f46", "rounds": 15}'

CPU milliseconds (the thread's), medians of the rounds, the three pickling the same state in turn, each round
starting with the next of them."""
import importlib.util
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import types


def _package_at(rev):
    """The runtime package as it was at commit `rev`, imported as `mlrt_<rev>`."""
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "python/microlambda_rt/"], check=True,
                           capture_output=True, text=True).stdout.split()
    where = tempfile.mkdtemp()
    for path in names:
        with open(os.path.join(where, os.path.basename(path)), "wb") as f:
            f.write(subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True).stdout)
    name = f"mlrt_{rev}"
    spec = importlib.util.spec_from_file_location(name, os.path.join(where, "__init__.py"),
                                                  submodule_search_locations=[where])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[name] = pkg
    spec.loader.exec_module(pkg)
    return name


def main(inp):
    import numpy as np
    import pandas as pd

    job_module = types.ModuleType("mlfn_bench_pandas")
    sys.modules[job_module.__name__] = job_module
    picklers = {"now": "microlambda_rt"}
    if inp.get("before"):
        picklers["before"] = _package_at(inp["before"])
    jobs = {k: (sys.modules[f"{p}.pickler"], sys.modules[f"{p}.state"]._Job(job_module)) for k, p in picklers.items()}

    signal = np.arange(8 * 7500.0).reshape(8, 7500)
    states = {
        "a 7,500-row frame, 15 float columns": [pd.DataFrame({f"c{i}": np.arange(7500.0) for i in range(15)})],
        "40 small frames (3 rows, 4 columns)": [
            pd.DataFrame({"a": [1.0, 2, 3], "b": [1, 2, 3], "c": ["x", "y", "z"], "d": [0.5] * 3}) for _ in range(40)],
        "500 views of one 2-D signal": [signal[i % 8, i % 50:i % 50 + 40] for i in range(500)],
        "500 small arrays owning their memory": [np.arange(float(i % 50 + 1)) for i in range(500)],
    }

    def ours(kind, root):
        P, job = jobs[kind]
        buf = io.BytesIO()
        pk = P._Pickler(buf, P._Capture(job, {}))
        pk.dump(root)
        pk.clear_memo()

    def plain(root):
        pickle.dumps(root, protocol=5)

    rows = []
    for name, root in states.items():
        runs = {"pickle": lambda: plain(root), **{k: (lambda k=k: ours(k, root)) for k in picklers}}
        took = {k: [] for k in runs}
        for f in runs.values():
            f()  # the handlers of the state's types, worked out once
        for r in range(inp.get("rounds", 15)):
            order = list(runs.items())
            for k, f in order[r % len(order):] + order[:r % len(order)]:  # each first in turn (caches)
                t = time.thread_time()
                f()
                took[k].append(time.thread_time() - t)
        med = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in took.items()}
        row = {"state": name, **{f"{k} ms": round(m, 3) for k, m in med.items()},
               "now / pickle": round(med["now"] / med["pickle"], 2)}
        if "before" in med:
            row["now / before"] = round(med["now"] / med["before"], 2)
        rows.append(row)
    return rows
