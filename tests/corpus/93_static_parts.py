"""Parts of static globals that the running code holds (a row of a graph's adjacency, an edge's dict, an array
and a table an instance keeps, an iterator over a static dict): saved by their path from the global
(src/py/statics.rs), each the restored module's own object again, so `is` still holds after a restore and the
walk goes on over the same dicts. What the walk leaves out: a global not declared static that a static object
also holds (`CACHE`, which the job fills: the job's, saved with the globals), a tuple that is its own key (it
would be in its own path), a lock a static object holds (held across a checkpoint, it must come back held)."""
import threading

import numpy as np

__microlambda_static__ = ("GRAPH", "NODES", "MODEL", "CANON")


CACHE = {}


class Model:
    def __init__(self):
        self.cache = CACHE
        self.lock = threading.Lock()
        self.weights = np.arange(12.0).reshape(3, 4)
        self.names = ["a", "b", "c"]
        self.table = {(i, i + 1): {"w": i * 0.5} for i in range(300)}


GRAPH = {i: {j: {"length": (i * 7 + j) % 13 + 0.5} for j in range(i + 1, min(i + 4, 400))} for i in range(400)}
NODES = sorted(GRAPH)
MODEL = Model()
CANON = {(i, i + 1): (i, i + 1) for i in range(50)}


def relax(adj, dist, u):
    nbrs = adj[u]
    for v, e in nbrs.items():  # a dict iterator over a static dict, and an edge's dict
        d = dist.get(u, 0.0) + e["length"]
        if d < dist.get(v, 1e18):
            dist[v] = d
    return nbrs


def main(inp):
    adj = GRAPH
    row = GRAPH[5]
    w = MODEL.weights
    table = MODEL.table
    cache = MODEL.cache
    total = 0.0
    same = []
    for it in range(inp["n"]):
        dist = {0: 0.0}
        for u in NODES:
            nbrs = relax(adj, dist, u)
            total += w[u % 3, u % 4]
        pair = CANON[(it % 50, it % 50 + 1)]
        with MODEL.lock:
            total += table[(it % 300, it % 300 + 1)]["w"] + sum(dist.values()) * 1e-6 + pair[0]
            cache[it % 7] = it
        same.append(row is GRAPH[5] and w is MODEL.weights and table is MODEL.table and nbrs is GRAPH[NODES[-1]]
                    and cache is CACHE and not MODEL.lock.locked())
    return {"total": round(float(total), 6), "same": all(same), "n": len(same), "cache": sorted(CACHE.items())}
