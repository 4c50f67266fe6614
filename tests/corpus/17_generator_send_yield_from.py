CLOSED = []


def acc():
    total = 0
    try:
        while True:
            x = yield total
            for i in range(500):
                total += (x * i) % 13
    finally:
        CLOSED.append(1)
def inner():
    v = yield 1
    r = 0
    for i in range(300):
        r += i * (v or 1)
    v = yield r
    return r + (v or 0)
def outer():
    a = yield from inner()
    b = yield from inner()
    return a + b
def main(inp):
    g = acc()
    next(g)
    res = []
    for k in range(inp["n"]):
        res.append(g.send(k))
        o = outer()
        vals = [next(o), o.send(3), o.send(4), o.send(5)]
        try:
            o.send(6)
        except StopIteration as e:
            vals.append(e.value)
        res.append(sum(vals))
    g.close()
    return [res[-20:], len(CLOSED)]
