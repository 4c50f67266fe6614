OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b % 10007,
    "xor": lambda a, b: a ^ b,
}


def compose(*fs):
    def run(x):
        for f in fs:
            x = f(x)
        return x
    return run


def main(inp):
    pipeline = compose(lambda x: x + 1, lambda x: x * 3 % 1000, abs)
    table = [(name, OPS[name]) for name in sorted(OPS)]
    acc = 1
    for i in range(inp["n"]):
        for name, f in table:
            acc = f(acc, i) % 100003
        acc = pipeline(acc)
        s = 0
        for j in range(200):
            s += j
    return acc
