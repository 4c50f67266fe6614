"""Classes that do their work in a Python `__new__` (a cache keyed by arguments, an immutable result built
before the instance exists), called as `Cls(...)` with keywords: most of the run is inside a class call's
`__new__`, which type_call called, so its instants waited for the call to return before, and type_call's
`__init__` (run again on a cached instance) must follow on resume. A `Sieve` (a tuple subclass built from `n` in
its `__new__`) held across a checkpoint failed to restore: pickle called its `__new__` on the tuple's value."""
import fractions


class Sieve(tuple):
    """Primes below n, built in `__new__` (a tuple subclass); `__init__` records its arguments."""

    made = 0

    def __new__(cls, n, *, step=1):
        flags = bytearray([1]) * n
        flags[:2] = b"\0\0"
        for i in range(2, int(n ** 0.5) + 1):
            if flags[i]:
                for j in range(i * i, n, i):
                    flags[j] = 0
        cls.made += 1
        return super().__new__(cls, [i for i in range(n) if flags[i]][::step])

    def __init__(self, n, *, step=1):
        self.n, self.step = n, step


class Harmonic:
    """A cached exact sum: `__new__` may return an old instance, which `__init__` then sees again."""

    _cache = {}

    def __new__(cls, terms, scale=1):
        obj = cls._cache.get(terms)
        if obj is None:
            obj = super().__new__(cls)
            total = fractions.Fraction(0)
            for k in range(1, terms + 1):
                total += fractions.Fraction(1, k * k)
            obj.total = total
            cls._cache[terms] = obj
        return obj

    def __init__(self, terms, scale=1):
        self.seen = getattr(self, "seen", 0) + 1
        self.scaled = self.total * scale


class Tagged(Harmonic):
    def __init__(self, terms, scale=1):
        super().__init__(terms, scale=scale)
        self.tag = f"h{terms}x{scale}"


def main(inp):
    s = Sieve(inp["n"], step=1)
    odd = Sieve(inp["n"] // 2, step=3)
    hs = [Harmonic(t, scale=2) for t in (inp["terms"], inp["terms"] // 2, inp["terms"])]
    tg = Tagged(inp["terms"] // 3, scale=5)
    return {"primes": len(s), "last": s[-3:], "sum": sum(s) % 1000003, "odd": len(odd), "odd_n": [odd.n, odd.step],
            "made": Sieve.made, "h": [str(h.scaled)[:40] for h in hs], "seen": [h.seen for h in hs],
            "same": hs[0] is hs[2], "tag": [tg.tag, tg.seen, str(tg.total)[-20:]]}
