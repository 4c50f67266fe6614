import contextlib
LOG = []
class CM:
    def __init__(self, name):
        self.name = name
    def __enter__(self):
        LOG.append("enter " + self.name)
        return self
    def __exit__(self, et, ev, tb):
        LOG.append(f"exit {self.name} {et.__name__ if et else None}")
        return et is KeyError
def f(i):
    try:
        with CM(f"a{i}"):
            with CM(f"b{i}") as b:
                s = 0
                for j in range(3000):
                    s += j
                if i % 3 == 0:
                    raise KeyError(i)
                if i % 3 == 1:
                    return s
        return -1
    finally:
        LOG.append(f"finally {i}")
def g(i):
    try:
        return i
    finally:
        if i % 2:
            return -i
def main(inp):
    tot = 0
    for i in range(inp["n"]):
        tot += f(i) + g(i)
        with contextlib.suppress(ZeroDivisionError):
            x = 1 / (i % 4)
    return [tot, LOG[-12:], len(LOG)]
