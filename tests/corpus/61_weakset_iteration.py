"""A `weakref.WeakSet` iterated by `for` loops (its `__iter__` is a generator inside a `with _IterationGuard`)
and a `WeakKeyDictionary` iterated by items: a checkpoint lands while the loop is suspended in the guard, which
the loop's end must find in the set's `_iterating` (cloudpickle saves a WeakSet as its members alone)."""
import weakref


class Node:
    def __init__(self, k):
        self.k = k


def work(i, n=50):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def main(inp):
    nodes = [Node(k) for k in range(40)]
    ws = weakref.WeakSet(nodes)
    wk = weakref.WeakKeyDictionary((n, n.k * 3) for n in nodes)
    t = 0
    for r in range(inp["n"]):
        for n in ws:
            t = (t + work(n.k + r)) % 1000003
        for n, v in wk.items():
            t = (t + v * (r % 5)) % 1000003
        if r % 50 == 49 and len(nodes) > 10:
            n = None  # the loops' last item (which one depends on addresses) must not keep it alive
            del nodes[-1]
    return [t, len(ws), len(wk), len(ws._iterating), sorted(n.k for n in ws)[:5]]
