"""Generators reached through C iterators that keep nothing of their own between items (`map`, `filter`,
`enumerate`, `zip` with the generator first, nested), consumed by C: `list(map(f, g))`, `"".join(map(str, g))`,
`sorted(filter(p, g))`, `set(enumerate(g))`, `tuple(zip(g, ...))`, `any(map(p, g))`, `list.extend(map(f, g))`,
`next(map(f, g))` in a loop, `Counter(map(f, g))`, and a `for` loop over `map(f, enumerate(g))`. Each generator
works between its items, so a checkpoint lands inside it while the C iterator and its consumer are below."""
import collections


def work(i, n=60):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def gen(n, salt):
    for i in range(n):
        yield work(i + salt)


def main(inp):
    n = inp["n"]
    out = []
    for r in range(inp["rounds"]):
        a = list(map(lambda v: v % 1009, gen(n, r)))
        out.append([len(a), sum(a), a[:3]])
        out.append("".join(map(str, gen(n // 4, r)))[-30:])
        out.append(sorted(filter(lambda v: v % 3 == 0, gen(n, r)))[::41])
        out.append(sorted(set(enumerate(v % 7 for v in gen(n // 2, r))))[-3:])
        out.append(tuple(zip(gen(n // 4, r), range(10 ** 6)))[-2:])
        out.append(any(map(lambda v: v == -1, gen(n // 2, r))))
        acc = [r]
        acc.extend(map(lambda v: v % 13, gen(n // 2, r)))
        out.append([len(acc), sum(acc)])
        it = map(lambda v: v * 2, gen(n // 4, r))
        firsts = [next(it) for _ in range(n // 8)]
        out.append([sum(firsts), len(list(it))])
        out.append(sorted(collections.Counter(map(lambda v: v % 5, gen(n // 2, r))).items()))
        total = 0
        for k, v in map(lambda p: (p[0], p[1] % 11), enumerate(gen(n // 2, r))):
            total += k * v
        out.append(total)
        out.append(list(map(str, filter(None, enumerate(gen(n // 8, r)))))[-1])
    return out
