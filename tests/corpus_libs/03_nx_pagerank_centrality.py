"""networkx: PageRank, HITS, degree and betweenness centrality, clustering on generated graphs."""
import networkx as nx


def top(scores, k=10, nd=10):
    return [[n, round(s, nd)] for n, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def main(inp):
    g = nx.barabasi_albert_graph(inp["n"], 3, seed=3)
    d = nx.DiGraph()
    for u, v in g.edges():
        d.add_edge(u, v) if (u + v) % 3 else d.add_edge(v, u)
    pr = nx.pagerank(d, alpha=0.85, tol=1e-10)
    hubs, auth = nx.hits(d, max_iter=500, tol=1e-10)
    bc = nx.betweenness_centrality(g, k=inp["k"], seed=1)
    return {
        "pagerank": top(pr),
        "hubs": top(hubs, 5, 8),
        "authorities": top(auth, 5, 8),
        "betweenness": top(bc),
        "degree": top(nx.degree_centrality(g)),
        "clustering": round(nx.average_clustering(g), 10),
        "triangles": sum(nx.triangles(g).values()) // 3,
        "core": max(nx.core_number(g).values()),
    }
