"""Benchmark job with small state: a few scalars and a 10-entry dict."""


def main(inp):
    acc = 0
    hist = {}
    i = 0
    while i < inp["iters"]:
        acc = (acc * 31 + i) % 1000003
        hist[i % 10] = hist.get(i % 10, 0) + 1
        if i == inp.get("at", -1):
            inp["hook"]()
        i += 1
    return acc
