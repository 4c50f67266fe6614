"""Python `__enter__` methods run by BEFORE_WITH from C, doing work before they return: a class's own, and a
`contextlib.contextmanager` whose generator works before its `yield` (its `__enter__` calls `next()` on it). After a
resume the `with` must hold the same `__exit__`: an exception in the body is seen by it, and it runs once."""
import contextlib


class Session:
    def __init__(self, n, log):
        self.n, self.log = n, log

    def __enter__(self):
        s = 0
        for i in range(self.n):
            s = (s * 31 + i) % 1000003
        self.log.append(("enter", s))
        return s

    def __exit__(self, et, ev, tb):
        self.log.append(("exit", et.__name__ if et else None))
        return et is KeyError


@contextlib.contextmanager
def prepared(n, log):
    s = 0
    for i in range(n):
        s = (s * 17 + i) % 1000003
    log.append(("setup", s))
    try:
        yield s
    finally:
        log.append("teardown")


def main(inp):
    log = []
    for r in range(inp["rounds"]):
        with Session(inp["n"] + r, log) as s:
            if r % 3 == 0:
                raise KeyError(r)
            log.append(s % 7)
        with prepared(inp["n"], log) as p:
            log.append(p % 11)
    return log
