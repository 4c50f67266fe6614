"""Generators whose items C gathers into a new container of its own: `list(g)`, `sorted(g)`, `str.join`,
`bytes.join`, `set(g)`, `frozenset(g)`, `tuple(g)` (past the tuple's first guess of ten items, so it grows), a generator partly consumed before (`next(g)` then `list(g)`, as joblib's
sequential Parallel does), items that are fresh lists, items that are all one shared object, frames holding
lists of their own that only they refer to (which must not be taken for the container), and a `list(g)` whose
generator runs another `list(g2)` (two containers of one type: the inner call is waited out). Each generator
works between its items, so a checkpoint lands inside it while C holds the container."""


def work(i, n=60):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def gen(n, salt):
    for i in range(n):
        yield work(i + salt)


def rows(n, salt):
    mine = []  # held only by this frame: not the container being filled
    for i in range(n):
        mine.append(i)
        yield [work(i + salt, 20), len(mine)]


def same(n, salt, token):
    for i in range(n):
        work(i + salt)
        yield token


def words(n, salt):
    for i in range(n):
        yield str(work(i + salt, 40) % 9973)


def nested(n, salt):
    for i in range(n // 20):
        yield sum(list(gen(20, salt + i)))


def main(inp):
    n = inp["n"]
    out = []
    for r in range(inp["rounds"]):
        decoy = [r]
        a = list(gen(n, r))
        out.append([len(a), sum(a) % 1000003, a[:3], a[-3:]])
        out.append(sorted(gen(n, r))[::37])
        out.append(",".join(words(n, r))[-40:])
        out.append(b"".join(w.encode() for w in words(n // 2, r))[:30].decode())
        out.append(len(set(v % 501 for v in gen(n, r))))
        out.append(sorted(frozenset(v % 53 for v in gen(n, r))))
        tp = tuple(gen(n // 4, r))
        out.append([len(tp), tp[:2], tp[-2:]])
        g = gen(n, r + 1)
        first = next(g)
        rest = list(g)
        out.append([first, len(rest), rest[-1]])
        rs = list(rows(n // 2, r))
        out.append([rs[0], rs[-1], sum(x[0] for x in rs) % 1000003])
        token = object()
        ss = list(same(n // 2, r, token))
        out.append([len(ss), all(x is token for x in ss)])
        out.append(list(nested(n, r))[-3:])
        decoy.append(len(a))
        out.append(decoy)
    return out
