"""Ufuncs made from Python functions (`np.frompyfunc`, with and without an identity, two outputs) and an
`np.vectorize` that cached one, held in locals for the whole run while Python work goes on between their
calls: numpy pickles ufuncs by name, which these have none of, so every checkpoint was refused before."""
import math

import numpy as np


def quantize(v, step):
    q = math.floor(v / step)
    return q * step + (step / 2 if q % 2 else 0.0)


def label(v):
    return "hi" if v > 0.7 else ("mid" if v > -0.2 else "lo")


class Counter:
    def __init__(self):
        self.calls = 0

    def combine(self, a, b):
        self.calls += 1
        return max(a, b) - 0.001 * min(a, b)


def main(inp):
    rng = np.random.default_rng(inp["seed"])
    counter = Counter()
    uq = np.frompyfunc(quantize, 2, 1)
    comb = np.frompyfunc(counter.combine, 2, 1, identity=0.0)
    split = np.frompyfunc(divmod, 2, 2)
    lab = np.vectorize(label, otypes=[object])
    out = []
    for k in range(inp["rounds"]):
        x = rng.standard_normal(inp["n"])
        q = uq(x, 0.25).astype(float)
        labels = lab(x)
        acc = 0.0
        for v in q[:: inp["stride"]]:  # plain Python between the ufunc calls
            acc = (acc * 1.01 + v) % 101.0
        red = comb.reduce(x.astype(object))
        run = comb.accumulate(x[:50].astype(object))[-1]
        d, m = split((x * 100).astype(int), 7)
        out.append([round(float(q.sum()), 6), int((labels == "hi").sum()), round(acc, 6), round(float(red), 6),
                    round(float(run), 6), int(d.sum()), int(m.sum())])
    return {"rounds": out, "calls": counter.calls, "empty": comb.reduce(np.array([], dtype=object))}
