def heavy(i):
    s = i
    for k in range(200):
        s = (s * 31 + k) % 1000003
    return s


def main(inp):
    n = inp["n"]
    found = any(heavy(i) == -1 for i in range(n))  # never true: any() runs the whole generator
    out = []
    out.extend(heavy(i) % 10 for i in range(n))
    return [found, sum(out)]
