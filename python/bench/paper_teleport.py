"""pyteleport 0.3.4 on a paper workload, for `microlambda-bench paper`: the session module of examples/paper/ is
driven as examples/paper/local.py drives it, and after request AT pyteleport's dump() snapshots the whole
process there; the snapshot is then run (`python snap.pyc`, the only way pyteleport restores) and must resume.

Usage: python paper_teleport.py FILE.py ENTRY OPENING_JSON REQUESTS_JSON AT
Prints one JSON object: {"dump_ms", "size", "restore_ms"}, or {"error": the exception's last line}."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DRIVER = r'''
import inspect, json, sys, time
from pyteleport import dump
import job  # the workload, next to this driver, importable again where the snapshot resumes
entry, opening, requests, at, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
opened = getattr(job, entry)(opening)
step = opened.send if inspect.isgenerator(opened) else opened.handle
if inspect.isgenerator(opened):
    next(opened)
for n, request in enumerate(requests, 1):
    step(request)
    if n == at:
        t = time.perf_counter()
        if dump(out, return_="resumed") == "resumed":
            print(json.dumps({"resumed_at": time.time()}), flush=True)
            raise SystemExit(0)
        print(json.dumps({"dump_ms": (time.perf_counter() - t) * 1e3}), flush=True)
'''


def last_line(text, default):
    """The last line of `text`, or of a traceback in it the line naming the exception (an exception's message
    can span lines: an array's repr)."""
    lines = text.strip().splitlines()
    named = [ln for ln in lines if not ln.startswith(" ") and ("Error" in ln or "Exception" in ln)]
    return (named or lines or [default])[-1][:300]


def main(path, entry, opening, requests, at):
    try:
        import pyteleport  # noqa: F401
    except ImportError:
        return {"error": "pyteleport is not installed (make bench-deps)"}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "drv.py"), "w") as f:
            f.write(DRIVER)
        shutil.copy(path, os.path.join(d, "job.py"))
        out = os.path.join(d, "snap.pyc")
        p = subprocess.run([sys.executable, "drv.py", entry, opening, requests, str(at), out],
                           capture_output=True, text=True, cwd=d)
        if p.returncode != 0 or not os.path.exists(out):
            return {"error": last_line(p.stderr, f"dump failed (exit {p.returncode})")}
        dumped = json.loads(last_line(p.stdout, "{}"))
        t = time.time()
        r = subprocess.run([sys.executable, out], capture_output=True, text=True, cwd=d)
        if r.returncode != 0 or "resumed_at" not in r.stdout:
            return {"error": "restore failed: " + last_line(r.stderr, f"exit {r.returncode}")}
        resumed = json.loads(last_line(r.stdout, "{}"))["resumed_at"]
        return {"dump_ms": dumped["dump_ms"], "size": os.path.getsize(out), "restore_ms": (resumed - t) * 1e3}


if __name__ == "__main__":
    print(json.dumps(main(os.path.abspath(sys.argv[1]), *sys.argv[2:5], int(sys.argv[5]))))
