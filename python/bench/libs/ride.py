"""Benchmark workload (ride): each request gets the nearest taxi by driving distance on the Helsinki street graph
(osmnx + networkx), as the paper's ride-hailing app does. The graph is loaded at import and declared static."""
import os
import random

import networkx as nx
import osmnx as ox

# The test data: `data/` beside this file (where the benchmark puts it), else the repository's tests/data.
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = next(d for d in (os.path.join(HERE, "data"), os.path.join(HERE, "..", "..", "..", "tests", "data"))
            if os.path.isdir(d))

G = ox.load_graphml(os.path.join(DATA, "ride", "helsinki_all.graphml.gz"))
R = G.reverse(copy=False)
NODES = list(G.nodes)
__microlambda_static__ = ("G", "R", "NODES")


def main(inp):
    rnd = random.Random(5)
    taxis = {i: rnd.choice(NODES) for i in range(12)}
    log = []
    for _ in range(inp["iters"]):
        pick = rnd.choice(NODES)
        dist = nx.single_source_dijkstra_path_length(R, pick, weight="length")
        best = min(taxis, key=lambda t: dist.get(taxis[t], float("inf")))
        log.append((best, round(dist.get(taxis[best], -1.0), 3)))
        taxis[best] = rnd.choice(NODES)
    return len(log)
