# Closures over variables that hold None (or are bound later), a parameter captured by an inner function while
# still None, and cells checkpointed while empty: each cell must come back holding exactly what it held.
def make(limit=None):
    seen = None

    def note(x):
        nonlocal seen
        seen = x if limit is None or (x is not None and x < limit) else seen
        return seen

    return note


def convert(data, matrix=None, scale=None):
    def apply(v):
        return v if matrix is None else v * matrix

    total = 0
    for i, v in enumerate(data):
        for j in range(40):
            total = (total + apply(v) + j) % 1000003
    late = None
    fns = [lambda: late]
    late = total
    return total, fns[0](), scale


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        note = make(None if r % 2 else r + 5)
        for k in range(60):
            note(k)
        out.append(note(None if r % 3 else r))
        out.append(convert(list(range(50)), matrix=None if r % 2 else 3))
    return out
