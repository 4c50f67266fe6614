"""Collections inside the checkpoint pause: a job with a library-sized heap (pandas, scipy, scikit-learn
imported: a full collection takes 100-200 ms) that keeps a state of small DataFrames and arrays live (its
capture makes and frees thousands of tuples) while it computes, checkpointed every 50 ms and going on. It records
every collection the job's process ran and returns how many of each generation, and their time. Run twice, the
capture putting the collector's young count back (`capture._count_back`, the default) and not (`"put_back":
false` replaces it with nothing for this run), and compare the pauses `--stats` prints:

    target/release/microlambda run python/bench/capture_gc.py:main --input '{"put_back": true}' \\
        --preempt-every 50 --keep-running --stats
    target/release/microlambda run python/bench/capture_gc.py:main --input '{"put_back": false}' \\
        --preempt-every 50 --keep-running --stats
"""
import gc
import importlib
import sys
import time


def main(inp):
    import numpy as np
    import pandas as pd
    import scipy.signal  # noqa: F401 - the heap of a signal-processing job
    import sklearn.svm  # noqa: F401

    if not inp.get("put_back", True):
        importlib.import_module("microlambda_rt.capture")._count_back = lambda young: None
    found = sys.modules["_mlrs"].young_count(gc.get_count()[0], gc.get_threshold()[0]) is not None
    runs = {0: [], 1: [], 2: []}
    began = [0.0]

    def timed(phase, info):
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            runs[info["generation"]].append(time.perf_counter() - began[0])

    gc.callbacks.append(timed)
    try:
        rng = np.random.default_rng(1)
        frames = []
        total = 0.0
        t_end = time.perf_counter() + inp.get("seconds", 20)
        while time.perf_counter() < t_end:
            x = rng.normal(size=(500, 6))
            df = pd.DataFrame(x, columns=list("abcdef"))
            df["g"] = (df["a"] > 0).astype(int)
            frames = (frames + [df.groupby("g").mean()])[-40:]
            total += float(sum(f["b"].sum() for f in frames))
    finally:
        gc.callbacks.remove(timed)
    return {"put_back": inp.get("put_back", True), "count_found": found, "total": round(total, 6),
            **{f"gen{g}": {"n": len(v), "ms": round(sum(v) * 1e3, 1), "max_ms": round(max(v, default=0) * 1e3, 1)}
               for g, v in runs.items()}}
