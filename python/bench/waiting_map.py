"""A `for` loop over `map(work, range(n))` whose function runs for tens of milliseconds per item: every instant
of the job is inside a function that map_next calls from C (docs/BENCHMARKS.md, "A function called by map")."""


def work(i):
    s = i
    for k in range(1500000):
        s = (s * 31 + k) % 1000003
    return s


def main(inp):
    t = 0
    for v in map(work, range(inp["n"])):
        t = (t + v) % 1000003
    return t
