import itertools


def heavy(i):
    s = i
    for k in range(300):
        s = (s * 31 + k) % 1000003
    return s


def pair(a, b):
    return heavy(a) ^ heavy(b)


class Scaler:
    def __init__(self, m):
        self.m = m

    def scale(self, v):
        return heavy(v) * self.m % 9973


def stop_at(limit):
    def f(v):
        if v >= limit:
            raise StopIteration  # inside map's call: ends the loop as plain CPython does
        return heavy(v)
    return f


def main(inp):
    n = inp["n"]
    total = 0
    for v in map(heavy, range(n)):  # a for loop over map(f, ...): f is called by map_next, from FOR_ITER
        total += v
    pairs = [p for p in map(pair, range(n // 2), range(n // 2, n))]  # two iterators, in a comprehension
    sc = Scaler(7)
    scaled = 0
    for v in map(sc.scale, range(n // 2)):  # a bound method
        scaled = (scaled + v) % 1000003
    star = 0
    for x in itertools.starmap(pair, zip(range(n // 4), range(1, n))):  # starmap: f(*item)
        star += x
    stopped = [v for v in map(stop_at(n // 3), range(n))]
    return [total, sum(pairs) % 1000003, pairs[::997], scaled, star, len(stopped), sum(stopped)]
