"""numpy structured arrays and a recarray filled and read record by record (`rec = ev[i]; rec["t"] = ...`),
with heapq and bisect. A record is a view of its array: saved as a copy, the writes made after a restore were
lost; and `np.recarray` says it is `numpy.rec`'s, a module numpy loads only on first use of `np.rec`, so it
was saved by value and a recarray restored in its `__getitem__` failed its `super()`."""
import bisect
import heapq

import numpy as np

EV = np.dtype([("t", "<f8"), ("kind", "u1"), ("who", "<i4"), ("amount", "<f4")])


def main(inp):
    n = inp["n"]
    rng = np.random.default_rng(inp["seed"])
    ev = np.zeros(n, dtype=EV)
    for i in range(n):
        rec = ev[i]
        rec["t"] = i * 0.25 + rng.random()
        rec["kind"] = i % 5
        rec["who"] = (i * 7919) % 97
        rec["amount"] = (i % 13) * 1.5
    ev.sort(order="t")
    ra = ev.view(np.recarray)
    heap = []
    totals = {}
    for i in range(0, n, 3):
        r = ra[i]
        r.amount = r.amount + 1
        totals[int(r.who)] = totals.get(int(r.who), 0.0) + float(r.amount)
        heapq.heappush(heap, (-float(r.amount), int(r.who), i))
        if len(heap) > 20:
            heapq.heappop(heap)
    times = ev["t"].tolist()
    idx = [bisect.bisect(times, x) for x in np.linspace(0, n * 0.25, 9)]
    grid = np.zeros((20, 20), dtype=[("hits", "<i8"), ("mass", "<f8")])
    for i in range(n // 4):
        cell = grid[i % 20, (i * 3) % 20]
        cell["hits"] += 1
        cell["mass"] += ev[i]["amount"]
    return {"top": sorted(heap)[:5], "tot": round(sum(totals.values()), 3), "idx": idx,
            "grid": [int(grid["hits"].sum()), round(float(grid["mass"].sum()), 3)],
            "kinds": np.bincount(ev["kind"]).tolist()}
