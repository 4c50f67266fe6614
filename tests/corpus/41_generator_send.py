"""Generators driven by calls (what a session's driver loop does): `g.send(v)`, `next(g)`, `next(g, default)`
and `g.__next__()`, each resuming a generator that works between its yields."""


def worker(scale):
    total = 0
    while True:
        got = yield total
        if got is None:
            got = 1
        for i in range(400):
            total = (total + i * got * scale) % 1000003


def countdown(n):
    while n > 0:
        s = 0
        for i in range(300):
            s += i % (n + 1)
        yield n, s
        n -= 1


def main(inp):
    out = []
    g = worker(3)
    out.append(g.send(None))
    for r in range(inp["rounds"]):
        out.append(g.send(r % 5))
        out.append(next(g))
        out.append(g.__next__())
    c = countdown(inp["rounds"] // 4)
    while True:
        item = next(c, None)
        if item is None:
            break
        out.append(item)
    return out
