EVENTS = []


def guarded(n, tag):
    try:
        for i in range(n):
            s = 0
            for j in range(300):
                s += j % (i + 1)
            yield s
    except GeneratorExit:
        EVENTS.append(("exit", tag))
        raise
    finally:
        EVENTS.append(("finally", tag))


def main(inp):
    out = []
    for r in range(inp["n"]):
        g = guarded(10, r)
        out.append(next(g) + next(g))
        if r % 2:
            g.close()
        else:
            out.append(sum(g))
    return [out[-10:], EVENTS[-6:], len(EVENTS)]
