"""networkx: minimum spanning tree, maximum flow / minimum cut, A* on a grid graph with obstacles."""
import networkx as nx


def main(inp):
    n = inp["side"]
    grid = nx.grid_2d_graph(n, n)
    for (a, b), (c, d) in grid.edges():
        grid[(a, b)][(c, d)]["weight"] = 1 + ((a * 7 + b * 13 + c * 3 + d) % 9)
    blocked = [(i, j) for i in range(n) for j in range(n) if (i * j + i) % 11 == 5 and (i, j) not in ((0, 0), (n - 1, n - 1))]
    grid.remove_nodes_from(blocked)
    mst = nx.minimum_spanning_tree(grid, algorithm="kruskal")
    mst_p = nx.minimum_spanning_tree(grid, algorithm="prim")

    def h(u, v):
        return abs(u[0] - v[0]) + abs(u[1] - v[1])

    astar = nx.astar_path(grid, (0, 0), (n - 1, n - 1), heuristic=h, weight="weight")
    flow_g = nx.DiGraph()
    for u, v, w in grid.edges(data="weight"):
        flow_g.add_edge(u, v, capacity=w)
        flow_g.add_edge(v, u, capacity=10 - w)
    value, flows = nx.maximum_flow(flow_g, (0, 0), (n - 1, n - 1))
    cut, (s_side, t_side) = nx.minimum_cut(flow_g, (0, 0), (n - 1, n - 1))
    return {
        "mst_weight": mst.size(weight="weight"),
        "prim_weight": mst_p.size(weight="weight"),
        "mst_edges": len(mst.edges()),
        "astar": [list(p) for p in astar],
        "astar_len": nx.path_weight(grid, astar, "weight"),
        "flow": value,
        "cut": cut,
        "s_side": len(s_side),
        "flow_out": sorted(flows[(0, 0)].items()),
    }
