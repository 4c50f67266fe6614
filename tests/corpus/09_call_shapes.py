def kw(a, b=2, *args, c=3, d=4, **extra):
    s = 0
    for i in range(200):
        s += a * b + c * d + len(args) + sum(extra.values()) + i % 3
    return s


def posonly(x, y, /, z=1, *, w=2):
    return x * y + z - w


def forward(*args, **kwargs):
    return kw(*args, **kwargs)


def main(inp):
    t = 0
    for i in range(inp["n"]):
        t += kw(i)
        t += kw(i, 3, 4, 5, c=i % 4, zz=1)
        t += forward(i, b=2, d=i % 3)
        t += forward(*[i, 1], **{"c": 2, "q": 3})
        t += posonly(i, 2, w=i % 5)
        args = (i, i + 1)
        t += kw(*args, d=1)
    return t
