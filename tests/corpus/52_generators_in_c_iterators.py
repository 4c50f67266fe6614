"""Generators driven by C iterators that keep state of their own (`zip` with the generator second, `map` over two
iterables, `itertools.islice`, `groupby`, `chain`, `zip` of two generators): no instant inside the generator can
be resumed, so a checkpoint waits, untraced, for the loop's frame to get the item, and is taken right there
(a breakpoint where the loop goes on); loops that end by exhaustion and by `break` both."""
import itertools


def work(i, n=50):
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
        acc = 0
        for w, v in zip(range(10 ** 9), gen(n, r)):
            acc = (acc + v * (w % 5)) % 1000003
        for v in map(lambda a, b: a ^ b, range(n), gen(n, r)):
            acc = (acc + v) % 1000003
        for v in itertools.islice(gen(n, r), 1, None, 3):
            acc = (acc * 7 + v) % 1000003
        groups = []
        for key, grp in itertools.groupby(gen(n, r), key=lambda v: v % 4 == 0):
            groups.append((key, sum(1 for _ in grp)))
        acc = (acc + len(groups) * 11 + sum(c for _, c in groups)) % 1000003
        for v in itertools.chain(gen(n // 2, r), gen(n // 2, r + 1)):
            acc = (acc + v) % 1000003
        for a, b in zip(gen(n, r), gen(n, r + 2)):
            if a == b == -1:
                break
            acc = (acc + a - b) % 1000003
        for i, v in zip(itertools.count(), gen(n, r)):
            if i == n // 2:
                break
            acc = (acc + i * v) % 1000003
        out.append([acc, groups[:3]])
    return out
