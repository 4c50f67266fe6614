class Stage:
    def __init__(self, k):
        self.k = k
        self.calls = 0

    def run(self, x, depth):
        self.calls += 1
        if depth == 0:
            return self.leaf(x)
        return self.run(x * 3 % 1009, depth - 1) + self.k

    def leaf(self, x):
        s = 0
        for i in range(400):
            s += (x + i) % (self.k + 2)
        return s


class Pipeline:
    def __init__(self):
        self.stages = [Stage(k) for k in range(4)]

    def process(self, x):
        return sum(st.run(x, 4) for st in self.stages) if x % 5 else self.slow(x)

    def slow(self, x):
        t = 0
        for st in self.stages:
            t += st.run(x + 1, 3)
        return t


def main(inp):
    p = Pipeline()
    total = 0
    for x in range(inp["n"]):
        total += p.process(x)
    return [total, [s.calls for s in p.stages]]
