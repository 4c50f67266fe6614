import sys
def producer(n):
    total = 0
    for i in range(n):
        for k in range(200):
            total += k
        x = yield i * 2 + (total % 7)
        if x:
            total += x

def relay(n):
    r = yield from producer(n)
    return r

def main(inp):
    out = []
    g = producer(inp["n"])
    pending = {k: producer(50) for k in range(3)}
    for v in g:
        out.append(v)
        for k, pg in pending.items():
            try:
                out.append(next(pg))
            except StopIteration:
                pass
    r = relay(inp["n"])
    s = 0
    for v in r:
        s += v
    out.append(s)
    return out[-50:]
