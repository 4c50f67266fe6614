"""The standard library's numbers: decimal with a changed current context and a local one (interest
schedule), fractions (continued fractions, Egyptian fractions), functools (lru_cache, reduce, partial,
singledispatch, total_ordering), statistics and math."""
import decimal
import fractions
import functools
import math
import operator
import statistics
from decimal import Decimal


@functools.lru_cache(maxsize=None)
def partitions(n, k):
    if n == 0:
        return 1
    if n < 0 or k == 0:
        return 0
    return partitions(n - k, k) + partitions(n, k - 1)


@functools.singledispatch
def describe(x):
    return f"obj:{x!r}"


@describe.register
def _(x: int):
    return f"int:{x}"


@describe.register
def _(x: fractions.Fraction):
    return f"frac:{x.numerator}/{x.denominator}"


@functools.total_ordering
class Money:
    def __init__(self, amount):
        self.amount = Decimal(amount).quantize(Decimal("0.01"))

    def __eq__(self, other):
        return self.amount == other.amount

    def __lt__(self, other):
        return self.amount < other.amount

    def __repr__(self):
        return f"Money({self.amount})"


def schedule(principal, rate, months):
    with decimal.localcontext() as ctx:
        ctx.prec = 28
        ctx.rounding = decimal.ROUND_HALF_EVEN
        r = Decimal(rate) / 12
        pay = (Decimal(principal) * r / (1 - (1 + r) ** -months)).quantize(Decimal("0.01"))
        bal = Decimal(principal)
        rows = []
        for m in range(months):
            interest = (bal * r).quantize(Decimal("0.01"))
            bal = bal + interest - pay
            rows.append(str(bal))
        return str(pay), rows


def egyptian(fr):
    out = []
    while fr.numerator:
        d = -(-fr.denominator // fr.numerator)
        out.append(d)
        fr -= fractions.Fraction(1, d)
    return out


def cont_frac(x, n):
    terms = []
    for _ in range(n):
        a = math.floor(x)
        terms.append(a)
        if x == a:
            break
        x = 1 / (x - a)
    return terms


def main(inp):
    decimal.getcontext().prec = 40  # the job thread's current context: every Decimal operation below uses it
    out = []
    for r in range(inp["rounds"]):
        partitions.cache_clear()
        out.append(one(dict(inp, principal=str(int(inp["principal"]) + 1000 * r), parts=inp["parts"] - r)))
    return out


def one(inp):
    pay, rows = schedule(inp["principal"], "0.045", inp["months"])
    fr = [fractions.Fraction(i, i * i + 7) for i in range(1, inp["fracs"])]
    total = functools.reduce(operator.add, fr)
    harm = sum(fractions.Fraction(1, k) for k in range(1, inp["harmonic"]))
    add3 = functools.partial(operator.add, 3)
    monies = sorted(Money(f"{(i * 7919) % 1000}.{i % 100:02d}") for i in range(50))
    return {
        "pay": pay,
        "last": rows[-3:],
        "total": [str(total.limit_denominator(10**6)), total.denominator.bit_length()],
        "harm": [harm.numerator.bit_length(), float(harm)],
        "egypt": egyptian(fractions.Fraction(inp["egypt"][0], inp["egypt"][1])),
        "cf": cont_frac(fractions.Fraction(math.pi), 12),
        "partitions": [partitions(n, n) for n in range(0, inp["parts"], 7)],
        "cache": partitions.cache_info().hits > 0,
        "dispatch": [describe(x) for x in (3, fractions.Fraction(2, 6), "s", 2.5)],
        "partial": list(map(add3, range(5))),
        "monies": [repr(monies[0]), repr(max(monies)), Money("1.005") <= Money("1.00")],
        "stats": [statistics.median([float(f) for f in fr]), round(statistics.pstdev([float(f) for f in fr]), 12)],
        "dec": [str(Decimal(1) / Decimal(7)), str(Decimal("2").sqrt()), str(Decimal("1.1") ** 20)],
        "comb": [math.comb(60, 30), math.isqrt(10**40 + 12345), math.gcd(*range(12, 10000, 12))],
    }
