"""State the job's module-level functions and classes hold in places the module, run again on restore, makes
afresh: a decorator's closure (`nonlocal` counter, with `functools.wraps`, so the wrapper carries the function's
name), a `singledispatch` function's registry filled by `register` at run time, and an `lru_cache` bound as a
dunder (`__call__ = lru_cache(f)`). Checkpoints land inside the wrapped functions, with the wrapper's frame (and
its cell) on the stack."""
import functools


def counting(f):
    calls = 0

    @functools.wraps(f)
    def wrapper(*args):
        nonlocal calls
        calls += 1
        return f(*args)

    wrapper.calls = lambda: calls
    return wrapper


@counting
def work(i, n=40):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


@functools.singledispatch
def kind(x):
    return "obj"


HITS = [0]


def heavy(self, n):
    HITS[0] += 1
    return work(n)


class Cached:
    __call__ = functools.lru_cache(maxsize=None)(heavy)


def main(inp):
    n = inp["n"]
    out = []
    kind.register(int, lambda x: "int")
    kind.register(float, lambda x: "float")
    c = Cached()
    for r in range(inp["rounds"]):
        acc = 0
        counts = {}
        for i in range(n):
            acc = (acc + work(i + r)) % 1000003
            k = kind(i if i % 3 else i * 0.5)
            counts[k] = counts.get(k, 0) + 1
            acc = (acc + c(i % 50)) % 1000003
        out.append([acc, sorted(counts.items()), work.calls()])
    return [out, HITS[0], Cached.__call__.cache_info().currsize]
