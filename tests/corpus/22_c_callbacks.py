import functools


def keyf(v):
    return (v * 7919) % 10007


def main(inp):
    data = list(range(inp["n"]))
    out = []
    for r in range(6):
        ordered = sorted(data, key=keyf)
        mapped = list(map(lambda v: v * r % 97, ordered))
        kept = list(filter(lambda v: v % 3 == r % 3, mapped))
        total = sum(x * x for x in kept)
        red = functools.reduce(lambda a, b: (a * 31 + b) % 1000003, kept, 7)
        out.append([ordered[r], len(kept), total % 100000, red])
    return out
