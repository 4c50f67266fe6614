"""What `node.limits.network = false` costs a job process: fork and exit against fork, unshare(CLONE_NEWNET)
and exit (the namespace made and torn down), side by side, milliseconds per process. Linux, as root.

    .venv/bin/python python/bench/netns_cost.py [--n 200] [--rounds 3]
"""
import argparse
import ctypes
import os
import time

CLONE_NEWNET = 0x40000000


def per_process(n, unshare, libc):
    t = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if not unshare or libc.unshare(CLONE_NEWNET) == 0 else 1)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit("unshare(CLONE_NEWNET) failed: run as root")
    return (time.perf_counter() - t) / n * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    print("| round | fork + exit ms | fork + netns + exit ms | netns costs ms |")
    print("|---|---|---|---|")
    for r in range(a.rounds):
        plain, netns = per_process(a.n, False, libc), per_process(a.n, True, libc)
        print(f"| {r + 1} | {plain:.3f} | {netns:.3f} | {netns - plain:.3f} |")


if __name__ == "__main__":
    main()
