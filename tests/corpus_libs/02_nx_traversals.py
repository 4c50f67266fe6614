"""networkx: BFS/DFS orders and trees, connected and strongly connected components, unweighted shortest paths."""
import networkx as nx


def main(inp):
    g = nx.gnp_random_graph(inp["n"], inp["p"], seed=5)
    d = nx.gnp_random_graph(inp["n"], inp["p"] / 2, seed=6, directed=True)
    comps = sorted((len(c), min(c)) for c in nx.connected_components(g))
    sccs = sorted((len(c), min(c)) for c in nx.strongly_connected_components(d))
    bfs = list(nx.bfs_tree(g, 0).edges())[:50]
    dfs = list(nx.dfs_preorder_nodes(g, 0))[:50]
    layers = [len(layer) for layer in nx.bfs_layers(g, [0])]
    lengths = dict(nx.single_source_shortest_path_length(g, 0))
    paths = [nx.shortest_path(g, 0, t) for t in range(1, inp["n"], inp["n"] // 20) if t in lengths]
    giant = g.subgraph(max(nx.connected_components(g), key=lambda c: (len(c), min(c))))
    ecc = sum(nx.eccentricity(giant, v=v) for v in sorted(giant)[:40])
    return {
        "components": comps[-5:],
        "ncomponents": len(comps),
        "sccs": sccs[-5:],
        "nsccs": len(sccs),
        "bfs": bfs,
        "dfs": dfs,
        "layers": layers,
        "paths": paths,
        "ecc": ecc,
        "topo": list(nx.topological_sort(nx.condensation(d)))[:20],
    }
