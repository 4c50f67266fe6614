"""State the job's module makes again on restore, which must come back as the job left it: virtual subclasses
registered with the module's ABCs at run time (`Base.register(Plain)`), and function defaults that are the very
constant a global or a class attribute holds (`MISSING = "<missing>"`, `def get(k, default=MISSING)`, tested
with `is`; an int sentinel likewise)."""
import abc

MISSING = "<missing value>"
NOTHING = 987654321


class Opts:
    UNSET = "<unset option>"

    def pick(self, x=UNSET):
        return x is Opts.UNSET


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self):
        ...


class Sized(abc.ABC):
    pass


class Square:
    def __init__(self, s):
        self.s = s

    def area(self):
        return self.s * self.s


class Blob:
    def __len__(self):
        return 3


def get(d, k, default=MISSING, *, other=NOTHING):
    v = d.get(k, default)
    return (v is MISSING) + 2 * (other is NOTHING)


def work(i, n=60):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def main(inp):
    Shape.register(Square)
    out = []
    local = MISSING
    for i in range(inp["n"]):
        if i == inp["n"] // 2:
            Sized.register(Blob)
        s = work(i)
        d = {i % 7: s} if i % 3 else {}
        out.append((get(d, 0), Opts().pick(), isinstance(Square(i), Shape), issubclass(Blob, Sized),
                    local is MISSING, s % 10))
    return [sum(a for a, *_ in out), sum(b for _, b, *_ in out), sum(c for _, _, c, *_ in out),
            sum(o[3] for o in out), sum(o[4] for o in out), sum(o[5] for o in out)]
