"""Session workload (ride), the paper's ride-hailing app on the Helsinki street graph (osmnx + networkx): each
request (pick-up, drop-off, time) gets the nearest taxi by driving distance among those free within 5 minutes,
and keeps it busy until it has dropped the rider off. State kept between requests: the taxis' positions and the
times they are busy until, so a taxi never carries two riders at once.

Open with `"entry": "Dispatch"` (input: {"taxis": 12, "seed": 5}). A request is
{"pickup": i, "dropoff": j, "t": seconds}, i and j indices into NODES (the graph's largest strongly connected
component, sorted: every drop-off is reachable from every pick-up); the reply names the taxi, or null when none
is free within 5 minutes. The graph is loaded at import and declared static (saved by reference)."""
import os
import random

import networkx as nx
import osmnx as ox

# The test data: $MICROLAMBDA_DATA, else tests/data under the working directory (a node started from the
# repository), else the repository's tests/data beside this file (run in place).
DATA = next(
    d
    for d in (
        os.environ.get("MICROLAMBDA_DATA", ""),
        os.path.join(os.getcwd(), "tests", "data"),
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data"),
    )
    if d and os.path.isdir(os.path.join(d, "ride"))
)
G = ox.load_graphml(os.path.join(DATA, "ride", "helsinki_all.graphml.gz"))
R = G.reverse(copy=False)
NODES = sorted(max(nx.strongly_connected_components(G), key=len))
__microlambda_static__ = ("G", "R", "NODES")

SPEED = 8.0  # m/s (about 29 km/h in town)
FREE_WITHIN = 300.0  # s: a taxi busy for longer than this is not offered


class Dispatch:
    def __init__(self, opening):
        opening = opening or {}
        rnd = random.Random(opening.get("seed", 5))
        self.at = [rnd.choice(NODES) for _ in range(opening.get("taxis", 12))]  # where each will be free
        self.busy_until = [0.0] * len(self.at)
        self.rides = 0

    def handle(self, req):
        pickup, dropoff = NODES[req["pickup"] % len(NODES)], NODES[req["dropoff"] % len(NODES)]
        t = float(req["t"])
        to_pickup = nx.single_source_dijkstra_path_length(R, pickup, weight="length")
        free = [i for i in range(len(self.at)) if self.busy_until[i] <= t + FREE_WITHIN and self.at[i] in to_pickup]
        if not free:
            return {"taxi": None, "t": t}
        taxi = min(free, key=lambda i: (to_pickup[self.at[i]], i))
        drive = to_pickup[self.at[taxi]]
        arrive = max(t, self.busy_until[taxi]) + drive / SPEED
        trip = nx.shortest_path_length(G, pickup, dropoff, weight="length")
        self.at[taxi] = dropoff
        self.busy_until[taxi] = arrive + trip / SPEED
        self.rides += 1
        return {
            "taxi": taxi,
            "t": t,
            "to_pickup_m": round(drive, 3),
            "pickup_s": round(arrive, 3),
            "trip_m": round(trip, 3),
            "dropoff_s": round(self.busy_until[taxi], 3),
            "rides": self.rides,
        }
