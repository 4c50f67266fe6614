"""Benchmark job with ~1 MB of state: a 1 MiB numpy array and a 1000-entry dict."""
import numpy as np


def main(inp):
    arr = np.random.default_rng(0).random(131072)  # 131072 float64 = 1 MiB
    table = {i: f"value-{i}" for i in range(1000)}
    acc = 0.0
    i = 0
    while i < inp["iters"]:
        arr[i % 131072] += 1.0
        acc += arr[i % 1024]
        table[i % 1000] = f"value-{i}"
        if i == inp.get("at", -1):
            inp["hook"]()
        i += 1
    return float(acc)
