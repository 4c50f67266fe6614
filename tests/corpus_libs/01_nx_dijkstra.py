"""networkx: build a weighted random graph, Dijkstra lengths and paths from several sources."""
import networkx as nx


def main(inp):
    g = nx.gnm_random_graph(inp["n"], inp["m"], seed=11)
    for u, v, d in g.edges(data=True):
        d["weight"] = 1 + (u * 31 + v * 17) % 23
    out = []
    for src in range(0, inp["n"], inp["n"] // inp["sources"]):
        dist = nx.single_source_dijkstra_path_length(g, src, weight="weight")
        far = max(sorted(dist), key=lambda t: dist[t])
        path = nx.dijkstra_path(g, src, far, weight="weight")
        out.append([src, far, dist[far], len(path), nx.dijkstra_path_length(g, src, path[len(path) // 2])])
    return out
