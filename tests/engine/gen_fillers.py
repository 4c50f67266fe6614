def heavy(i):
    s = i
    for k in range(200):
        s = (s * 31 + k) % 1000003
    return s


def chunks(n):
    for j in range(n // 50):
        yield sum(list(heavy(i) for i in range(j * 50, j * 50 + 50)))  # a list(g) inside a list(g)


def main(inp):
    n = inp["n"]
    a = list(heavy(i) for i in range(n))
    b = sorted(heavy(i) % 1000 for i in range(n))
    c = ",".join(str(heavy(i)) for i in range(n // 2))
    d = set(heavy(i) % 997 for i in range(n // 2))
    t = tuple(heavy(i) for i in range(n // 2))
    g = (heavy(i) for i in range(n // 2))
    first = next(g)  # partly consumed first, as joblib's sequential Parallel does
    e = list(g)
    f = list(chunks(n // 2))
    return [sum(a), b[::500], len(c), c[-30:], len(d), sum(t), t[-1], first, len(e), e[-1], sum(f)]
