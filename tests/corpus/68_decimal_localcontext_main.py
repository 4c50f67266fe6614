"""A `with decimal.localcontext()` block in the job's own function around the whole loop, with fractions,
`bisect.insort(key=)` into a list of instances, a `random.Random` whose state is taken and set again, and
statistics: the block's bound `__exit__` on main's stack is a C method of a `decimal.ContextManager`, which cannot
pickle itself, so every instant of the block was refused. The manager is saved as the context its `__exit__`
puts back (read from it once it is found entered) and made again by `localcontext()`."""
import bisect
import decimal
import fractions
import random
import statistics


class Item:
    def __init__(self, k, v):
        self.k = k
        self.v = v


def main(inp):
    rng = random.Random(42)
    saved = rng.getstate()
    items = []
    fr = fractions.Fraction(0)
    with decimal.localcontext() as ctx:
        ctx.prec = 12
        ctx.rounding = decimal.ROUND_HALF_EVEN
        d = decimal.Decimal(0)
        for i in range(inp["n"]):
            k = rng.random()
            bisect.insort(items, Item(k, i), key=lambda it: it.k)
            fr += fractions.Fraction(i % 7 + 1, i % 11 + 1)
            d += decimal.Decimal(1) / decimal.Decimal(i % 13 + 3)
            if i % 500 == 250:
                rng.setstate(saved)
                saved = rng.getstate()
                rng.random()
            for j in range(20):
                k = (k * 3.1 + j) % 1.0
        ds = str(d)
    pos = bisect.bisect_left(items, 0.5, key=lambda it: it.k)
    vals = [it.v for it in items[:50]]
    return [ds, str(fr.limit_denominator(1000)), pos, vals[:10], statistics.median(vals), round(statistics.pstdev(vals), 6)]
