"""Python operator methods run by COMPARE_OP, BINARY_OP and CONTAINS_OP from C, doing work before they return: forward
methods that answer, ones that return NotImplemented (C then tries the reflected method of the other operand,
then identity for ==, or raises TypeError), in-place methods that decline (C then runs the plain operation), and
an operand of another type (an int). After a resume the caller must get what C would have made of the result."""


def churn(n, salt):
    s = salt
    for i in range(n):
        s = (s * 31 + i) % 1000003
    return s


class Vec:
    def __init__(self, x, n):
        self.x, self.n = x, n

    def __lt__(self, other):
        churn(self.n, self.x)
        if not isinstance(other, Vec):
            return NotImplemented
        return self.x < other.x

    def __eq__(self, other):
        churn(self.n, self.x)
        if isinstance(other, Vec) and other.x % 3 == 0:
            return NotImplemented  # then other.__eq__(self), then identity
        return isinstance(other, Vec) and self.x == other.x

    __hash__ = object.__hash__

    def __sub__(self, other):
        churn(self.n, self.x)
        if isinstance(other, Vec):
            return Vec(self.x - other.x, self.n)
        if isinstance(other, int) and other < 0:
            return NotImplemented  # int has no answer either: TypeError
        return NotImplemented if isinstance(other, Scalar) else Vec(self.x - other, self.n)

    def __isub__(self, other):
        churn(self.n, self.x)
        if isinstance(other, int) and other % 2:
            return NotImplemented  # C then runs self - other
        self.x -= other.x if isinstance(other, Vec) else other
        return self


class Bag:
    def __init__(self, n):
        self.n = n

    def __contains__(self, item):
        churn(self.n, item)
        return item % 3  # an int: C takes its truth


class Scalar:
    def __init__(self, k):
        self.k = k

    def __rsub__(self, other):
        churn(other.n, self.k)
        return Vec(other.x - 2 * self.k, other.n)

    def __gt__(self, other):  # the reflected __lt__
        return True


def main(inp):
    n = inp["n"]
    out = []
    for r in range(inp["rounds"]):
        a, b = Vec(r, n), Vec(r + 1, n)
        out.append(a < b)
        out.append(a < Scalar(r))
        out.append(a == Vec(r, n))
        out.append(a == b)
        out.append((a - b).x)
        out.append((a - 5).x)
        out.append((a - Scalar(2)).x)
        try:
            a - (-1)
        except TypeError as e:
            out.append(str(e))
        try:
            out.append(a < 3)
        except TypeError as e:
            out.append(str(e))
        out.append(r in Bag(n))
        out.append(r not in Bag(n))
        c = Vec(r, n)
        c -= 4
        c -= 3
        c -= b
        out.append(c.x)
    return out
