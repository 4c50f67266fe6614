"""Reference measurements for `microlambda bench checkpoint`, run with the venv's python.

pickle: pickle.dumps of the job's live variables at the checkpoint (the lower bound of any checkpointer).
pyteleport: pyteleport 0.3.4's dump() called at the same point of the same job; its restore is
`python payload.pyc` in a fresh process (the only way it restores), timed to the first resumed instruction.
"""
import importlib.util
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time


def load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def live_state(mod, at):
    """Run the job up to iteration `at` and return its live variables there (via the job's own hook)."""
    box = {}

    def hook():
        f = sys._getframe(1)
        box["vars"] = dict(f.f_locals)
        raise StopIteration

    try:
        mod.main({"iters": at + 1, "at": at, "hook": hook})
    except StopIteration:
        pass
    v = box["vars"]
    v["inp"] = {k: v["inp"][k] for k in ("iters", "at")}
    return v


def bench_pickle(path, at, reps):
    state = live_state(load(path), at)
    times = []
    size = 0
    for _ in range(reps):
        t = time.perf_counter()
        b = pickle.dumps(state, protocol=5)
        times.append((time.perf_counter() - t) * 1e3)
        size = len(b)
    return {"capture_ms": statistics.median(times), "size": size}


TELEPORT_DRIVER = r'''
import sys, time, json
from pyteleport import dump
import job  # a copy of the benchmark job next to this driver, importable again when the snapshot resumes
out = sys.argv[2]
res = {}
def hook():
    t = time.perf_counter()
    r = dump(out, return_="resumed")
    if r == "resumed":
        print(json.dumps({"resumed_at": time.time()}), flush=True)
        raise SystemExit(0)
    res["dump_ms"] = (time.perf_counter() - t) * 1e3
job.main({"iters": int(sys.argv[3]) + 2, "at": int(sys.argv[3]), "hook": hook})
print(json.dumps(res))
'''


def bench_pyteleport(path, at, reps):
    try:
        import pyteleport  # noqa: F401
    except ImportError:
        return {"error": "pyteleport is not installed (make bench-deps)"}
    dumps, sizes, restores = [], [], []
    with tempfile.TemporaryDirectory() as d:
        drv = os.path.join(d, "drv.py")
        with open(drv, "w") as f:
            f.write(TELEPORT_DRIVER)
        with open(path) as src, open(os.path.join(d, "job.py"), "w") as dst:
            dst.write(src.read())
        for k in range(reps):
            out = os.path.join(d, f"snap{k}.pyc")
            p = subprocess.run([sys.executable, drv, path, out, str(at)], capture_output=True, text=True, cwd=d)
            if p.returncode != 0 or not os.path.exists(out):
                return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
            dumps.append(json.loads(p.stdout.strip().splitlines()[-1])["dump_ms"])
            sizes.append(os.path.getsize(out))
            t = time.time()
            r = subprocess.run([sys.executable, out], capture_output=True, text=True, cwd=d)
            if r.returncode != 0 or "resumed_at" not in r.stdout:
                return {"error": "restore failed: " + ((r.stderr.strip().splitlines() or ["?"])[-1][:200])}
            restores.append((json.loads(r.stdout.strip().splitlines()[-1])["resumed_at"] - t) * 1e3)
    return {"capture_ms": statistics.median(dumps), "size": int(statistics.median(sizes)),
            "restore_ms": statistics.median(restores)}


if __name__ == "__main__":
    path, at, reps = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps({"pickle": bench_pickle(path, at, 50), "pyteleport": bench_pyteleport(path, at, reps)}))
