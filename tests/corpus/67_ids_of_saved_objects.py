"""State keyed by `id()` of objects the state also holds: `copy.deepcopy`'s memo (interrupted in the middle of
a deep copy of nested lists, dicts, tuples, namedtuples and instances, some shared and one cyclic), a cache keyed by the id
of an object the job keeps (as matplotlib keys its text layouts by `id(renderer)`), and a set of ids used to
visit each object of a graph once. The objects come back at other addresses: unless the ints that were their
ids come back as their new ids, the copy resumed mid-way duplicates shared parts (and breaks the cycle), the
cache misses and the visited set lets nodes be visited twice."""
import collections
import copy

Point = collections.namedtuple("Point", "x y")


class Node:
    def __init__(self, name, weight):
        self.name = name
        self.weight = weight
        self.children = []
        self.meta = {"tags": (name, weight % 5), "seen": [], "at": Point(weight, [name])}


def build(n):
    nodes = [Node(f"n{i}", i * 7 % 31) for i in range(n)]
    for i, nd in enumerate(nodes):
        for j in (i * 3 + 1, i * 5 + 2, i * 11 + 3):
            if j < n:
                nd.children.append(nodes[j])
    shared = [1, 2, [3, 4]]
    for nd in nodes[::7]:
        nd.meta["seen"].append(shared)
    nodes[0].meta["self"] = nodes[0]  # a cycle
    return nodes


class Layout:
    """A cache keyed by id(renderer), the renderer being an object the job keeps."""

    def __init__(self):
        self.cache = {}
        self.misses = 0

    def measure(self, renderer, text):
        key = (id(renderer), text)
        hit = self.cache.get(key)
        if hit is None:
            self.misses += 1
            hit = self.cache[key] = sum(ord(c) * renderer.scale for c in text) % 1009
        return hit


class Renderer:
    def __init__(self, scale):
        self.scale = scale


def walk(root):
    seen = set()
    order = []
    stack = [root]
    while stack:
        nd = stack.pop()
        if id(nd) in seen:
            continue
        seen.add(id(nd))
        order.append(nd.name)
        total = 0
        for k in range(40):
            total += (k * nd.weight) % 7
        stack.extend(nd.children)
    return order


def check(orig, cp):
    ok = cp[0].meta["self"] is cp[0] and cp[0] is not orig[0]
    shared = [nd.meta["seen"][0] for nd in cp[::7]]
    ok = ok and all(s is shared[0] for s in shared) and shared[0] is not orig[0].meta["seen"][0]
    by_name = {nd.name: nd for nd in cp}
    ok = ok and all(c is by_name[c.name] for nd in cp for c in nd.children)
    ok = ok and all(nd.meta["at"].y[0] == nd.name and nd.meta["at"] is not o.meta["at"] for nd, o in zip(cp, orig))
    return ok


def main(inp):
    n = inp["n"]
    out = []
    layout = Layout()
    # An object whose pickling arguments hold its own id (a Counter reduces to a dict of itself): kept, as the
    # int it is, not saved inside itself without end.
    own = collections.Counter()
    own[id(own)] += 1
    renderers = [Renderer(s) for s in (3, 5, 7)]
    for r in range(inp["rounds"]):
        nodes = build(n + r)
        cp = copy.deepcopy(nodes)
        out.append(check(nodes, cp))
        order = walk(cp[0])
        out.append(len(order))
        for i in range(300):
            layout.measure(renderers[i % 3], f"label {i % 17}")
    return {"ok": all(out[::2]), "visited": sum(out[1::2]), "misses": layout.misses, "own": len(own)}
