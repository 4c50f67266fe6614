"""osmnx: graph statistics, GeoDataFrames of nodes and edges, nearest nodes, bearings, k-shortest routes on the
small West Oakland extract and the Helsinki graph."""
import os

import networkx as nx
import osmnx as ox

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")

# The street graph, read once per worker as the module loads (read_graphml's parse runs under list(generator),
# which checkpoints wait out) and saved by reference; the job works on its own copy.
GRAPH = ox.load_graphml(os.path.join(DATA, "ride", "helsinki_all.graphml.gz"))
__microlambda_static__ = ("GRAPH",)


def main(inp):
    g = GRAPH.copy()
    nodes, edges = ox.convert.graph_to_gdfs(g)
    nx.set_node_attributes(g, ox.stats.count_streets_per_node(g), "street_count")
    stats = ox.stats.basic_stats(g)
    small = ox.graph_from_xml(os.path.join(DATA, "ride", "West-Oakland.osm.bz2"), retain_all=True)
    xs = nodes["x"].to_numpy()
    ys = nodes["y"].to_numpy()
    pts_x = [float(xs[i]) + 0.0001 for i in range(0, len(xs), len(xs) // inp["points"])]
    pts_y = [float(ys[i]) - 0.0001 for i in range(0, len(ys), len(ys) // inp["points"])]
    near = ox.distance.nearest_nodes(g, pts_x, pts_y)
    gb = ox.bearing.add_edge_bearings(ox.convert.to_undirected(small))
    src, dst = sorted(g.nodes)[10], sorted(g.nodes)[2000]
    routes = list(ox.routing.k_shortest_paths(g, src, dst, inp["k"], weight="length"))
    return {
        "n": stats["n"],
        "m": stats["m"],
        "street_length_total": round(stats["street_length_total"], 3),
        "streets_per_node_avg": round(stats["streets_per_node_avg"], 9),
        "highways": edges["highway"].astype(str).value_counts().head(5).to_dict(),
        "nearest": [int(n) for n in near],
        "small": [len(small), small.number_of_edges()],
        "bearings": sorted(round(b, 4) for _, _, b in gb.edges(data="bearing") if b == b)[:10],
        "routes": [len(r) for r in routes],
    }
