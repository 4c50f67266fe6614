import itertools


def heavy(i):
    s = i
    for k in range(300):
        s = (s * 31 + k) % 1000003
    return s


def odd(v):
    return heavy(v) & 1


class Gate:
    def __init__(self, m):
        self.m = m
        self.asked = 0

    def passes(self, v):
        self.asked += 1
        return heavy(v) % self.m != 0


def main(inp):
    n = inp["n"]
    total = 0
    for v in filter(odd, range(n)):  # a for loop over filter(p, ...): p is called by filter_next, from FOR_ITER
        total += v
    evens = [v for v in itertools.filterfalse(odd, range(n // 2))]  # filterfalse, in a comprehension
    g = Gate(3)
    kept = 0
    for v in filter(g.passes, range(n // 2)):  # a bound method
        kept += 1
    last = [v for v in filter(lambda v: heavy(v) > 0 and v == n // 4 - 1, range(n // 4))]  # only the last item
    return [total, len(evens), sum(evens) % 1000003, kept, g.asked, last]
