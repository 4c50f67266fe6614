"""Generators consumed by C that keeps nothing of its own between their items: `any`/`all`, `list.extend`,
`set.update`, `dict.update`, `deque.extend`, `Counter` (through `_count_elements`), and `for` loops over
`enumerate`, `filter`, `map` and `zip` wrapping the generator. Each generator works between its items, so a
checkpoint lands inside it while the C consumer is on the stack."""
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
        out.append(any(v == -1 for v in gen(n, r)))
        out.append(all(v >= 0 for v in gen(n, r)))
        lst = [r]
        lst.extend(gen(n, r))
        out.append(sum(lst) % 1000003)
        seen = set()
        seen.update(v % 97 for v in gen(n, r))
        out.append(len(seen))
        d = {}
        d.update((v % 13, i) for i, v in enumerate(gen(n, r)))
        out.append(sorted(d.items()))
        dq = collections.deque(maxlen=5)
        dq.extend(gen(n, r))
        dq.extendleft(gen(n // 4, r))
        out.append(list(dq))
        out.append(sorted(collections.Counter(v % 7 for v in gen(n, r)).items()))
        acc = 0
        for i, v in enumerate(gen(n, r), 3):
            acc = (acc + i * v) % 1000003
        for v in filter(lambda x: x % 2, gen(n, r)):
            acc = (acc + v) % 1000003
        for v in map(str, gen(n, r)):
            acc = (acc + len(v)) % 1000003
        for v, w in zip(gen(n, r), range(10 ** 9)):
            acc = (acc + v * w) % 1000003
        out.append(acc)
    return out
