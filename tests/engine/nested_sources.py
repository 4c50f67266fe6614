def heavy(i):
    s = i
    for k in range(300):
        s = (s * 31 + k) % 1000003
    return s


def keep(v):
    return heavy(v) % 3 != 0


def main(inp):
    n = inp["n"]
    # The loop's map (or filter) calls the same function as the map it pulls from: an instant inside that
    # function may be the inner map's call, whose result is not the loop's item.
    t = 0
    for v in map(heavy, map(heavy, range(n))):
        t = (t * 7 + v) % 1000003
    u = 0
    for v in filter(keep, map(heavy, filter(keep, range(n)))):
        u = (u * 7 + v) % 1000003
    return [t, u]
