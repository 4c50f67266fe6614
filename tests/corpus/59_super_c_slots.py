"""`super().__init__(...)` and `super().append(...)` reaching a C base (dict, list, Exception, weakref.ref through
WeakValueDictionary's KeyedRef): while the arguments are computed, the caller's stack holds the base's slot or
method bound to the instance, which its own pickling would bring back as the subclass's override (the resumed
call ran the subclass's own __init__ again). A Python base reached by super() too."""
import weakref


def slow(n):
    s = 0
    for k in range(60):
        s = (s * 31 + k + n) % 65521
    return s


class Record(dict):
    def __init__(self, n):
        super().__init__(s=slow(n), n=n)
        self["twice"] = 2 * n


class Log(list):
    def append(self, x):
        super().append(slow(x))


class Failed(Exception):
    def __init__(self, n):
        super().__init__(n, slow(n))
        self.n = n


class Base:
    def step(self, k):
        return k + 1


class Child(Base):
    def step(self, k):
        return super().step(slow(k)) * 2


class Node:
    pass


def main(inp):
    tot = 0
    log = Log()
    reg = weakref.WeakValueDictionary()
    keep = []
    c = Child()
    for i in range(inp["n"]):
        r = Record(i)
        log.append(i)
        try:
            raise Failed(i)
        except Failed as e:
            tot += e.args[1] + e.n
        node = Node()
        reg[i] = node
        if i % 10 == 0:
            keep.append(node)
        tot = (tot + r["s"] + r["twice"] + len(r) + log[-1] + c.step(i)) % 1000003
    return [tot, len(log), sum(log) % 1000, len(reg)]
