def heavy(i):
    s = i
    for k in range(200):
        s = (s * 31 + k) % 1000003
    return s


def gen(n):
    for i in range(n):
        yield heavy(i)


def main(inp):
    n = inp["n"]
    a = list(map(lambda v: v % 1000, gen(n)))
    b = ",".join(map(str, gen(n // 2)))
    c = sorted(filter(lambda v: v % 2, gen(n)))
    d = []
    d.extend(map(lambda p: p[0] + p[1], enumerate(gen(n // 2))))
    e = any(map(lambda v: v < 0, gen(n // 2)))
    return [sum(a), len(b), b[-20:], c[::700], sum(d), e]
