"""Many generators held suspended at the same yield, as a state holds them (networkx's maximum flow keeps one per
node): the restore makes one morph per shape and fills it for each generator, so each must come back with its
own locals, its own value stack (a `for` loop's iterator, a partly built tuple), its own closure cell and its own
handled exception; generators created and never started, with different arguments; generators of one code at
different yields, with different locals bound; a `yield from` chain. They are advanced in an interleaved order
while the job works, so checkpoints land with many of them in every state."""
import zlib


def work(i, n=40):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def counter(start, step):
    for k in range(start, start + 1000 * step, step):
        yield k


def pairs(seq, salt):
    for i, x in enumerate(seq):
        yield (salt, i, (x * 3 + salt) % 97, "p%d" % (x % 5))


def tuple_on_stack(n):
    for i in range(n):
        t = (i, (yield i), i + 1)  # suspended with `i` on the stack below the yield's value
        yield t


def with_closure(base):
    acc = [base]

    def bump(k):
        acc[0] += k
        return acc[0]

    def gen():
        for k in range(10000):
            yield bump(k)

    return gen()


def in_handler(tag):
    try:
        raise KeyError(tag)
    except KeyError as e:
        for k in range(10000):
            yield (str(e), k)


def branches(x):
    if x % 2:
        a = x * 7
        yield ("odd", a)
        yield ("odd2", a + 1)
    else:
        b = str(x)
        yield ("even", b)
        yield ("even2", b * 2)
    while True:
        yield ("tail", x)


def outer(n):
    yield from inner(n)
    yield ("outer-done", n)


def inner(n):
    for k in range(n):
        yield ("inner", n, k)


def main(inp):
    n = inp["n"]
    gens = []
    for i in range(n):
        gens.append(counter(i, i % 7 + 1))
        gens.append(pairs(range(i, i + 500), i))
        gens.append(with_closure(i))
        gens.append(in_handler("t%d" % (i % 13)))
        gens.append(branches(i))
        gens.append(outer(i % 9 + 300))
    tp = [tuple_on_stack(1000) for _ in range(n)]
    for i, g in enumerate(tp):
        next(g)
        if i % 3:
            g.send(i * 10)  # some now hold a half-made tuple on their stack, some wait at the first yield
    created = [counter(i * 2, 3) for i in range(n)]  # never started until the end
    trace = []
    digest = 0
    for r in range(inp["rounds"]):
        for i, g in enumerate(gens):
            if (i + r) % 5 == 0:
                v = next(g)
                trace.append(v)
                digest = (digest * 131 + zlib.crc32(repr(v).encode())) % 1000000007
        for i, g in enumerate(tp):
            if (i + r) % 4 == 0:
                v = g.send(r) if (i + r) % 8 else next(g)
                digest = (digest * 137 + zlib.crc32(repr(v).encode())) % 1000000007
        digest = (digest + work(r, 2000)) % 1000000007
    tail = [next(g) for g in created]
    return {"digest": digest, "trace": trace[-40:], "len": len(trace), "created": tail[:20]}
