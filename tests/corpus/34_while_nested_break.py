def collatz_len(x):
    n = 0
    while True:
        if x == 1:
            break
        x = x // 2 if x % 2 == 0 else 3 * x + 1
        n += 1
    return n


def main(inp):
    best = (0, 0)
    i = 1
    while i < inp["n"]:
        c = collatz_len(i)
        if c > best[0]:
            best = (c, i)
        i += 1
        while i % 1000 == 0:
            i += 1
            break
    return best
