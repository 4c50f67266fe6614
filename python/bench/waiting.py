"""Benchmark job whose Python code runs only as a callback of C: `min(key=)` calls `spread` for every element, and
no instant inside that call can be resumed. A checkpoint request waits for each call to return; the job should run
at (nearly) its own speed meanwhile."""


def spread(v):
    return (v * 7919) % 1009


def main(inp):
    total = 0
    for _ in range(inp["rounds"]):
        total += min(range(inp["n"]), key=spread)
    return total
