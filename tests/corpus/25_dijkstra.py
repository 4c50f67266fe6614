import heapq
import random


def graph(n, seed):
    rng = random.Random(seed)
    g = {i: [] for i in range(n)}
    for i in range(n):
        for _ in range(4):
            j = rng.randrange(n)
            g[i].append((j, rng.randint(1, 20)))
    return g


def dijkstra(g, src):
    dist = {src: 0}
    pq = [(0, src)]
    while pq:
        d, u = heapq.heappop(pq)
        if d > dist.get(u, 1 << 60):
            continue
        for v, w in g[u]:
            nd = d + w
            if nd < dist.get(v, 1 << 60):
                dist[v] = nd
                heapq.heappush(pq, (nd, v))
    return dist


def main(inp):
    g = graph(inp["n"], 7)
    taxis = list(range(0, inp["n"], 37))
    out = []
    for req in range(12):
        dist = dijkstra(g, (req * 101) % inp["n"])
        best = min(taxis, key=lambda t: (dist.get(t, 1 << 60), t))
        out.append([best, dist.get(best, -1)])
    return out
