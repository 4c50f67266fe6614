"""Predicates called by `filter` and `itertools.filterfalse` for a `for` loop or a comprehension: filter_next
calls the predicate on the item it pulled and gives that item or pulls the next, so a checkpoint inside the
predicate resumes the loop with the predicate's result taken as filter_next takes it. Plain functions, lambdas,
closures, bound methods, filterfalse, a generator as the source, a predicate true or false at the instant, the
last item rejected (the loop ends), a predicate raising (caught around the loop) or raising StopIteration
(ending the loop), nested loops, a predicate that rebinds its parameter (waited out: the item is gone from it),
and a filter over a map of the same function (waited out: the call may be the map's)."""
import itertools


def work(i, n=60):
    s = i
    for k in range(n):
        s = (s * 31 + k) % 1000003
    return s


def odd(v):
    return work(v) & 1


def gen(n, salt):
    for i in range(n):
        yield i * 3 + salt


class Sieve:
    def __init__(self, m):
        self.m = m
        self.asked = 0

    def keeps(self, v):
        self.asked += 1
        return work(v) % self.m


def below(limit):
    def f(v):
        if v >= limit:
            raise StopIteration  # inside filter's call: ends the loop as plain CPython does
        return work(v) % 5
    return f


def picky(v):
    if v == 777:
        raise ValueError(f"bad item {v}")
    return work(v) % 4


def squashed(v):
    v = work(v) % 7  # rebinds the parameter: the item filter passed is no longer in it
    return v > 2


class Truth:
    """A predicate result whose truth is asked for by filter_next."""

    def __init__(self, v):
        self.v = v

    def __bool__(self):
        return work(self.v, 20) % 3 == 0


def main(inp):
    n = inp["n"]
    out = []
    for r in range(inp["rounds"]):
        t = 0
        for v in filter(odd, range(r, n + r)):
            t = (t * 7 + v) % 1000003
        out.append(t)
        out.append(sum([v for v in itertools.filterfalse(odd, gen(n // 2, r))]) % 1000003)
        sv = Sieve(r + 3)
        s = 0
        for v in itertools.filterfalse(sv.keeps, range(n // 2)):
            s = (s + v) % 1000003
        out.append([s, sv.asked])
        # Only the last item passes, or none: the rejected last item ends the loop from filter's next pull.
        out.append([v for v in filter(lambda v: work(v) >= 0 and v == n // 4 - 1, range(n // 4))])
        out.append([v for v in filter(lambda v: work(v) < 0, range(n // 4))])
        cut = [v for v in filter(below(n // 3 + r), range(n))]
        out.append([len(cut), cut[-1]])
        try:
            got = []
            for v in filter(picky, range(700, 700 + n)):
                got.append(v)
        except ValueError as e:
            out.append([str(e), len(got)])
        pairs = 0
        for a in filter(odd, range(n // 20)):
            for b in itertools.filterfalse(lambda b: work(a ^ b, 30) & 1, range(n // 20)):
                pairs = (pairs * 3 + a * b) % 1000003
        out.append(pairs)
        q = 0
        for v in filter(squashed, range(n // 3)):
            q = (q * 3 + v) % 1000003
        out.append(q)
        q = 0
        for v in filter(Truth, range(n // 3)):
            q = (q * 3 + v) % 1000003
        out.append(q)
        m = 0
        for v in filter(odd, map(work, filter(odd, range(n // 3)))):
            m = (m * 5 + v) % 1000003
        out.append(m)
    return out
