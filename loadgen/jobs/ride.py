"""Ride matching on a synthetic grid city.

The city is a `grid` x `grid` street grid (default 30 x 30) with travel times from a seeded random.Random; every
other row is a one-way street (east and west in turn), columns are two-way, so every corner reaches every
other. A stream of `requests` ride requests (pickup, drop-off, from the same seed) is served in order: each goes
to the nearest free taxi, found by Dijkstra (heapq) from the pickup over the reversed street graph; the taxi is
busy while it drives to the pickup and on to the drop-off, then waits there.

Input: {"requests": 200, "taxis": 25, "grid": 30, "seed": 7}  (about 1.2 ms a request: 200 take 0.3 s, 1000 take 1.2 s).
Output: matches, requests no free taxi could take, total pickup and trip times and a checksum of the log.
"""

import heapq
import random

INF = 1 << 60


def build_city(n, rng):
    """Forward and reversed adjacency lists: node r*n+c, edges (neighbour, minutes)."""
    fwd = [[] for _ in range(n * n)]
    rev = [[] for _ in range(n * n)]

    def street(a, b, w):
        fwd[a].append((b, w))
        rev[b].append((a, w))

    for r in range(n):
        for c in range(n):
            u = r * n + c
            if c + 1 < n:
                v = u + 1
                w = rng.randint(1, 9)
                if r % 4 == 1:
                    street(u, v, w)  # one-way east
                elif r % 4 == 3:
                    street(v, u, w)  # one-way west
                else:
                    street(u, v, w)
                    street(v, u, w)
            if r + 1 < n:
                v = u + n
                w = rng.randint(1, 9)
                street(u, v, w)
                street(v, u, w)
    return fwd, rev


def nearest_free(rev, pickup, taxi_at, free):
    """The free taxi with the shortest drive to `pickup` (ties: lower taxi id) and that drive, or (-1, -1)."""
    waiting = {}
    for t in range(len(taxi_at)):
        if free[t]:
            waiting.setdefault(taxi_at[t], []).append(t)
    if not waiting:
        return -1, -1
    dist = {pickup: 0}
    pq = [(0, pickup)]
    while pq:
        d, u = heapq.heappop(pq)
        if d > dist[u]:
            continue
        if u in waiting:
            return waiting[u][0], d
        for v, w in rev[u]:
            nd = d + w
            if nd < dist.get(v, INF):
                dist[v] = nd
                heapq.heappush(pq, (nd, v))
    return -1, -1


def drive(fwd, src, dst):
    """Shortest travel time from src to dst."""
    dist = {src: 0}
    pq = [(0, src)]
    while pq:
        d, u = heapq.heappop(pq)
        if u == dst:
            return d
        if d > dist[u]:
            continue
        for v, w in fwd[u]:
            nd = d + w
            if nd < dist.get(v, INF):
                dist[v] = nd
                heapq.heappush(pq, (nd, v))
    return INF


def main(x):
    x = x or {}
    requests = int(x.get("requests", 200))
    taxis = int(x.get("taxis", 25))
    n = int(x.get("grid", 30))
    rng = random.Random(int(x.get("seed", 7)))
    fwd, rev = build_city(n, rng)
    cells = n * n
    taxi_at = [rng.randrange(cells) for _ in range(taxis)]
    busy_until = [0] * taxis
    log = []
    matched = unmatched = total_pickup = total_trip = 0
    checksum = 0
    now = 0
    for i in range(requests):
        now += rng.randint(1, 9)  # minutes between requests
        pickup = rng.randrange(cells)
        dropoff = rng.randrange(cells)
        free = [busy_until[t] <= now for t in range(taxis)]
        taxi, d = nearest_free(rev, pickup, taxi_at, free)
        if taxi < 0:
            unmatched += 1
            log.append((i, -1, 0))
            checksum = (checksum * 31 + 7) % 2305843009213693951
            continue
        trip = drive(fwd, pickup, dropoff)
        busy_until[taxi] = now + d + trip
        taxi_at[taxi] = dropoff
        matched += 1
        total_pickup += d
        total_trip += trip
        log.append((i, taxi, d))
        checksum = (checksum * 31 + taxi * 100003 + d * 17 + trip) % 2305843009213693951
    return {
        "requests": requests,
        "matched": matched,
        "unmatched": unmatched,
        "total_pickup_min": total_pickup,
        "total_trip_min": total_trip,
        "checksum": checksum,
        "last": [list(e) for e in log[-3:]],
    }
