"""Benchmark job whose Python code recurses through C: an `lru_cache`d function calls itself through the cache's
C wrapper, which keeps the key in C while it waits (no instant under it can be resumed), and the waiting frame's
own code runs again inside the call it waits on. A checkpoint request waits until the outermost call returns; the
job should run at (nearly) its own speed meanwhile."""
import functools


@functools.lru_cache(maxsize=None)
def partitions(n, k):
    if n == 0:
        return 1
    if n < 0 or k == 0:
        return 0
    return partitions(n - k, k) + partitions(n, k - 1)


def main(inp):
    total = 0
    for _ in range(inp["rounds"]):
        partitions.cache_clear()
        total += partitions(inp["n"], inp["n"]) % 1000003
    return total
