def slow_squares(n):
    for i in range(n):
        acc = 0
        for j in range(600):
            acc += (i * j) % 13
        yield i * i + acc


def pairs(it):
    prev = None
    for x in it:
        if prev is not None:
            yield prev, x
        prev = x


def main(inp):
    total = 0
    count = 0
    for a, b in pairs(slow_squares(inp["n"])):
        total += (b - a) % 1000
        count += 1
    gen = (x * 2 for x in slow_squares(50))
    tail = [next(gen) for _ in range(5)]
    return [total, count, tail]
