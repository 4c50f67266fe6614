def make_acc(start):
    total = start
    history = []

    def add(x):
        nonlocal total
        total += x
        history.append(total)
        return total

    def get():
        return total, len(history)

    return add, get


def make_multipliers():
    return [lambda x, i=i: x * i for i in range(5)]


def main(inp):
    add, get = make_acc(10)
    mults = make_multipliers()
    counter = 0

    def bump():
        nonlocal counter
        counter += 1
        return counter

    for i in range(inp["n"]):
        for m in mults:
            add(m(i) % 7)
        s = 0
        for k in range(300):
            s += k % 5
        if i % 3 == 0:
            bump()
    return [get(), counter]
