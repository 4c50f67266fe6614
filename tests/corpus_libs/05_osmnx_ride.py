"""osmnx + networkx: the ride-hailing workload on the Helsinki street graph. Load the GraphML, add speeds and travel
times, then for each request one Dijkstra from the pick-up over the reversed graph and the nearest free taxi."""
import os

import networkx as nx
import osmnx as ox

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")

# The street graph, read once per worker as the module loads (read_graphml's parse runs under list(generator),
# which checkpoints wait out) and saved by reference; the job works on its own copy.
GRAPH = ox.load_graphml(os.path.join(DATA, "ride", "helsinki_all.graphml.gz"))
__microlambda_static__ = ("GRAPH",)


def main(inp):
    g = ox.routing.add_edge_speeds(GRAPH.copy(), fallback=30)
    g = ox.routing.add_edge_travel_times(g)
    nodes = sorted(g.nodes)
    rev = g.reverse(copy=False)
    taxis = {i: nodes[(i * 211) % len(nodes)] for i in range(inp["taxis"])}
    log = []
    for r in range(inp["requests"]):
        pickup = nodes[(r * 977 + 13) % len(nodes)]
        dropoff = nodes[(r * 389 + 101) % len(nodes)]
        dist = nx.single_source_dijkstra_path_length(rev, pickup, weight="travel_time")
        cands = sorted((round(dist[n], 6), t) for t, n in taxis.items() if n in dist)
        if not cands:
            log.append([r, None])
            continue
        eta, taxi = cands[0]
        try:
            route = ox.routing.shortest_path(g, pickup, dropoff, weight="length")
        except nx.NetworkXNoPath:
            route = None
        if route:
            taxis[taxi] = dropoff
            length = sum(min(d["length"] for d in g[u][v].values()) for u, v in zip(route, route[1:]))
            log.append([r, taxi, eta, len(route), round(length, 3)])
        else:
            log.append([r, taxi, eta, 0, 0])
    return {"nodes": len(g), "edges": g.number_of_edges(), "log": log}
