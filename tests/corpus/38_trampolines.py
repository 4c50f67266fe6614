# Python frames called through C that only forwards the call: an instance's __call__ (also through *args and
# functools.partial), a class running __init__, a metaclass __call__, properties (get and set), a descriptor's
# __get__, functools.cached_property, __getattr__, __getitem__/__setitem__/__delitem__, __next__ driven by a for
# loop (including the StopIteration that ends it and an exception that escapes it into the caller's try), and
# __enter__. Each callee loops long enough to be checkpointed inside, where the caller waits in C.
import functools


def spin(k, salt):
    s = 0
    for i in range(k):
        s = (s * 31 + i + salt) % 1000003
    return s


class Meta(type):
    def __call__(cls, *args):
        inst = super().__call__(*args)
        inst.made = spin(400, 3)
        return inst


class Made(metaclass=Meta):
    def __init__(self, x):
        self.x = x


class Scaled:
    def __get__(self, obj, objtype=None):
        return spin(300, 7) + (obj.base if obj is not None else 0)


class Box:
    scaled = Scaled()

    def __init__(self, base):
        self.base = base
        self.store = {}
        self.acc = spin(500, base)

    def __call__(self, k, salt=0):
        return spin(k, salt + self.base)

    @property
    def heavy(self):
        return spin(600, self.base)

    @heavy.setter
    def heavy(self, v):
        self.acc += spin(300, v)

    @functools.cached_property
    def cached(self):
        return spin(700, self.base + 1)

    def __getattr__(self, name):
        return spin(200, len(name))

    def __getitem__(self, k):
        return spin(k, 11)

    def __setitem__(self, k, v):
        self.store[k] = spin(250, v)

    def __delitem__(self, k):
        self.store.pop(k, None)
        self.acc ^= spin(150, 5)


class Count:
    def __init__(self, n, fail_at=None):
        self.i, self.n, self.fail_at = 0, n, fail_at

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        self.i += 1
        v = spin(200, self.i)
        if self.i == self.fail_at:
            raise ValueError(v)
        return v


class Guard:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        self.log.append(spin(350, 1))
        return self

    def __exit__(self, *exc):
        self.log.append(exc[0] is None)
        return False


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        b = Box(r)
        out.append(b(800, salt=r))
        args = (600,)
        out.append(b(*args))
        out.append(functools.partial(b, 400)(salt=2))
        out.append(b.heavy)
        b.heavy = r
        out.append(b.scaled)
        out.append(b.cached + b.cached)
        out.append(b.missing_attribute)
        out.append(b[300])
        b["k"] = r
        del b["k"]
        out.append(b.acc)
        out.append(Made(r).made)
        out.append(sum(v for v in Count(3)))
        total = 0
        for v in Count(4):
            total += v
        out.append(total)
        try:
            for v in Count(5, fail_at=3):
                total -= v
        except ValueError as e:
            out.append(("caught", e.args[0], total))
        log = []
        with Guard(log) as g:
            log.append(g is not None)
        out.append(log)
    return out
