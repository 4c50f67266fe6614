class Grid:
    def __init__(self, n):
        self.n = n
    def __getitem__(self, k):
        s = 0
        for i in range(3000):
            s += (i * k) % 11
        return s
def work(*args, **kw):
    t = 0
    for a in args:
        for i in range(2000):
            t += a * i % 7 + kw.get("bias", 0)
    return t
def main(inp):
    g = Grid(5)
    out = []
    for k in range(inp["n"]):
        out.append(g[k] + 1)
        out.append(work(*[k, k + 1], **{"bias": 2}))
    return sum(out)
