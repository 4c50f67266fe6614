def gen(i):
    yield 1
    return i


def main(inp):
    held = []
    out = []
    for i in range(inp["n"]):
        it = gen(i)
        next(it)
        try:
            it.send(None)
        except StopIteration as e:
            held.append(e)
        try:
            open("/nonexistent/microlambda")
        except OSError as e:
            held.append(e)
        s = 0
        for j in range(20000):  # checkpoints land here, with the exceptions held in a list
            s += j
        out.append([held[-2].value, held[-1].errno, held[-1].filename])
        held = held[-4:]
    return [sum(v for v, _, _ in out), sum(1 for _, errno, _ in out if errno == 2), out[-1]]
