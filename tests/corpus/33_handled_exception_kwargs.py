import sys, traceback
class Boom(Exception):
    pass
def work(i):
    s = 0
    for k in range(300):
        s += k * i
    if i % 7 == 3:
        raise Boom(f"bad {i}")
    return s
def kw(a, b=2, *args, c=3, **kw):
    t = 0
    for i in range(200):
        t += a * b + c + len(args) + len(kw)
    return t
def main(inp):
    res = []
    for i in range(inp["n"]):
        try:
            try:
                res.append(work(i))
            finally:
                res.append(-1)
        except Boom as e:
            h = sys.exception()
            s = 0
            for k in range(300):
                s += k
            res.append(str(h) + str(s))
            res.append(traceback.format_exc().splitlines()[-1])
        args = (i, 3)
        kws = {"c": 5, "z": 1}
        res.append(kw(*args, **kws))
        res.append(kw(i, b=i, c=2))
    return res[-40:]
