"""A Python `__iter__` that works before it returns its iterator, run by GET_ITER from C (a `for` loop or
`list()` of the object), and one that returns a non-iterator (PyObject_GetIter's TypeError, the same after a
resume)."""


class Rows:
    def __init__(self, n, salt):
        self.n, self.salt = n, salt

    def __iter__(self):
        out = []
        s = self.salt
        for i in range(self.n):
            s = (s * 31 + i) % 1000003
            out.append(s % 1000)
        return iter(out)


class Broken:
    def __iter__(self):
        s = 0
        for i in range(3000):
            s += i
        return s


def main(inp):
    total = []
    for r in range(inp["rounds"]):
        acc = 0
        for v in Rows(inp["n"], r):
            acc += v
        total.append(acc)
        try:
            for _ in Broken():
                pass
        except TypeError as e:
            total.append(str(e))
    return total
