"""A library method's default that it tests with `is`, held by its frame while the job's code it called runs:
`MutableMapping.pop(key, default=__marker)` calls the job's `__getitem__` (through BINARY_SUBSCR) and, on a
KeyError, raises only `if default is self.__marker`. A checkpoint inside `__getitem__` must bring the marker
back as the restoring process's own (the class attribute), not as a copy: with a copy, pop returned the copy
instead of raising."""
from collections.abc import MutableMapping


class Slow(MutableMapping):
    def __init__(self, n):
        self.d = {k: k * k for k in range(n) if k % 3}

    def __getitem__(self, k):
        acc = 0
        for i in range(3000):
            acc += (i * k) % 7
        if k not in self.d:
            raise KeyError(k)
        return self.d[k] + acc

    def __setitem__(self, k, v):
        self.d[k] = v

    def __delitem__(self, k):
        del self.d[k]

    def __iter__(self):
        return iter(self.d)

    def __len__(self):
        return len(self.d)


def main(inp):
    s = Slow(inp["n"])
    out = []
    for k in range(inp["n"]):
        try:
            v = s.pop(k)
        except KeyError:
            v = -1
        out.append(v if type(v) is int else repr(type(v)))
    return [len(s), sum(v for v in out if type(v) is int), [v for v in out if type(v) is not int][:3]]
