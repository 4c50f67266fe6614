"""Class calls whose Python `__new__` does the work: type_call runs `__new__`, then `__init__` with the same
arguments when the result is an instance of the class (by its MRO), and returns the result. Called with the
arguments listed, or unpacked from a tuple and a dict (CALL_FUNCTION_EX); through a metaclass's
`super().__call__`; for a class of an ABC (ABCMeta has a `__new__` of its own), `fractions.Fraction` among them."""

import abc
import fractions

LOG = []


def heavy(i):
    s = i
    for k in range(300):
        s = (s * 31 + k) % 1000003
    return s


class Interned:
    """`__new__` returns a cached instance: `__init__` runs again on it, as CPython does."""

    _cache = {}

    def __new__(cls, key, *, scale=1):
        obj = cls._cache.get(key % 7)
        if obj is None:
            obj = super().__new__(cls)
            obj.h = heavy(key)
            cls._cache[key % 7] = obj
        return obj

    def __init__(self, key, *, scale=1):
        self.inits = getattr(self, "inits", 0) + 1
        self.last = key * scale


class Sub(Interned):
    """Inherits the `__new__`; its own `__init__`."""

    _cache = {}

    def __init__(self, key, *, scale=1):
        super().__init__(key, scale=scale)
        self.sub = heavy(key + 1)


class Elsewhere:
    """`__new__` returns something that is not an instance: no `__init__`."""

    def __new__(cls, n):
        return [heavy(n), n]

    def __init__(self, n):
        LOG.append(("never", n))


class Bare:
    """A `__new__` and no `__init__` of its own (object's, which takes the arguments without complaint)."""

    def __new__(cls, n, tag="b"):
        self = object.__new__(cls)
        self.v = heavy(n)
        self.tag = tag
        return self


class BadInit:
    def __new__(cls, n):
        self = object.__new__(cls)
        self.v = heavy(n)
        return self

    def __init__(self, n):
        return n  # TypeError from type_call


class Slow:
    """Long in both: a request lands in `__new__`, the next in the `__init__` the resumed call runs."""

    def __new__(cls, n, *, rounds):
        self = object.__new__(cls)
        self.a = 0
        for k in range(rounds):
            self.a += heavy(n + k)
        return self

    def __init__(self, n, *, rounds):
        self.b = 0
        for k in range(rounds):
            self.b ^= heavy(n - k)


class Registry(type):
    """A metaclass whose `__call__` goes on with `super().__call__(...)`: type_call runs `__new__` below it."""

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        cls.made = getattr(cls, "made", 0) + 1
        return obj


class Made(metaclass=Registry):
    def __new__(cls, n):
        self = object.__new__(cls)
        self.v = heavy(n)
        return self

    def __init__(self, n):
        self.w = heavy(n + 2)


class Shape(abc.ABC):
    """ABCMeta defines a `__new__` of its own (for classes): the class's is still what `Shape(...)` runs."""

    def __new__(cls, n):
        self = super().__new__(cls)
        self.v = heavy(n)
        return self


def main(inp):
    out = 0
    errors = 0
    for i in range(inp["n"]):
        a = Interned(i, scale=3)
        b = Sub(i)
        c = Elsewhere(i)
        d = Bare(i, tag="x") if i % 2 else Bare(i)
        try:
            BadInit(i)
        except TypeError as e:
            errors += str(e) == "__init__() should return None, not 'int'"
        e = Interned(*(i + 1,), **{"scale": 2}) if i % 3 else Bare(*[i])  # CALL_FUNCTION_EX
        f, g = Made(i), Shape(i)
        q = fractions.Fraction(i + 1, 7) + fractions.Fraction(1, i + 2)
        if i % 500 == 0:
            s = Slow(i, rounds=inp["slow"])
            out ^= s.a + s.b
        if i % 500 == 250:
            s = Slow(*(i,), **{"rounds": inp["slow"]})
            out ^= s.a - s.b
        out = (out * 7 + a.h + a.last + a.inits + b.sub + b.inits + c[0] + d.v + len(d.tag) + getattr(e, "h", 0) + getattr(e, "v", 0)
               + f.v + f.w + g.v + Made.made + q.numerator % 1000) % 1000000007
    return {"out": out, "errors": errors, "log": LOG, "inits": sorted(o.inits for o in Interned._cache.values())}
