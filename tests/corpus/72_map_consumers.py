"""Functions called by `map` for a C consumer or filler: `list(map(f, xs))`, `sorted`, `set`, `frozenset`,
`tuple`, `"".join`, `any`/`all`, `lst.extend`, `set.update`, `deque.extend`, `itertools.starmap`, a bound
method. Each f works between items, so checkpoints land inside it while C takes its results."""
import collections
import itertools


def work(i, n):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


class Scaler:
    def __init__(self, k):
        self.k = k

    def scale(self, x):
        return work(x, 60) * self.k % 1009


def main(inp):
    n = inp["n"]
    xs = list(range(n))
    out = {}
    out["list"] = sum(list(map(lambda x: work(x, 60), xs)))
    out["sorted"] = sorted(map(lambda x: work(x, 60) % 997, xs))[:: max(1, n // 10)]
    out["set"] = len(set(map(lambda x: work(x, 60) % 5003, xs)))
    out["frozenset"] = len(frozenset(map(lambda x: work(x, 60) % 4001, xs)))
    out["tuple"] = tuple(map(lambda x: work(x, 60) % 7, xs))[-5:]
    out["join"] = len(",".join(map(lambda x: str(work(x, 60)), xs)))
    out["any"] = any(map(lambda x: work(x, 60) == -1, xs))
    out["all"] = all(map(lambda x: work(x, 60) >= 0, xs))
    acc = [1, 2]
    acc.extend(map(lambda x: work(x, 60) % 11, xs))
    out["extend"] = sum(acc)
    s = {0}
    s.update(map(lambda x: work(x, 60) % 13, xs))
    out["update"] = sorted(s)
    dq = collections.deque(maxlen=50)
    dq.extend(map(lambda x: work(x, 60) % 17, xs))
    out["deque"] = list(dq)
    out["starmap"] = sum(list(itertools.starmap(lambda a, b: work(a + b, 60), zip(xs, xs))))
    out["method"] = sum(list(map(Scaler(3).scale, xs)))
    return out
