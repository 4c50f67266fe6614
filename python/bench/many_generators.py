"""Benchmark job: a state holding thousands of suspended generators, as networkx's maximum flow does (a
`CurrentEdge` per node, iterating `Mapping.items()` of the node's `AtlasView`: a `collections.abc` generator
over a dict iterator). `n` of them, then `secs` of light work during which a checkpoint is taken."""
import collections.abc
import time


class View(collections.abc.Mapping):
    def __init__(self, d):
        self._d = d

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)


class CurrentEdge:
    __slots__ = ("_edges", "_it", "_curr")

    def __init__(self, edges):
        self._edges = edges
        self._it = iter(edges.items())
        self._curr = next(self._it)


def main(inp):
    n = inp["n"]
    adj = {i: {j: {"w": 1} for j in range(i, i + 4)} for i in range(n)}
    current = [CurrentEdge(View(adj[i])) for i in range(n)]
    t = time.time()
    s = 0
    while time.time() - t < inp["secs"]:
        for c in current[:100]:
            s += c._curr[0]
    return [len(current), s > 0]
