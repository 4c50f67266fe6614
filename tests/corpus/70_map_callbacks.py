"""Functions called by `map` and `itertools.starmap` for a `for` loop or a comprehension: map_next calls the
function on the items it pulled and returns its result, so a checkpoint inside the function resumes the loop
with that result. Plain functions, closures, lambdas, bound methods, two iterators, a generator as the source,
an exception raised in the function (caught around the loop), StopIteration ending the loop early, and nested
maps (an instant in the inner function is waited out: the outer map's function is not the callee)."""
import itertools


def work(i, n=80):
    s = i
    for k in range(n):
        s = (s * 31 + k) % 1000003
    return s


def gen(n, salt):
    for i in range(n):
        yield i * 3 + salt


class Acc:
    def __init__(self, m):
        self.m = m
        self.seen = 0

    def step(self, v):
        self.seen += 1
        return work(v) * self.m % 9973


def bounded(limit):
    def f(v):
        if v >= limit:
            raise StopIteration
        return work(v)
    return f


def picky(v):
    if v == 777:
        raise ValueError(f"bad item {v}")
    return work(v)


def main(inp):
    n = inp["n"]
    out = []
    for r in range(inp["rounds"]):
        t = 0
        for v in map(work, range(r, n + r)):
            t = (t * 7 + v) % 1000003
        out.append(t)
        out.append(sum([p for p in map(lambda a, b: work(a) ^ work(b), range(n // 2), gen(n // 2, r))]) % 1000003)
        acc = Acc(r + 3)
        s = 0
        for v in map(acc.step, gen(n // 2, r)):
            s = (s + v) % 1000003
        out.append([s, acc.seen])
        sm = [x for x in itertools.starmap(lambda a, b: work(a + b), zip(range(n // 4), range(r, n)))]
        out.append([len(sm), sum(sm) % 1000003])
        cut = [v for v in map(bounded(n // 3 + r), range(n))]
        out.append([len(cut), cut[-1]])
        try:
            got = []
            for v in map(picky, range(700, 700 + n)):
                got.append(v)
        except ValueError as e:
            out.append([str(e), len(got)])
        nested = 0
        for v in map(work, map(lambda x: work(x) % 500, range(n // 4))):
            nested = (nested + v) % 1000003
        out.append(nested)
    return out
