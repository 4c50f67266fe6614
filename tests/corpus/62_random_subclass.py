"""`random.Random` subclasses: one whose `__init__` takes arguments and keeps attributes of its own, and one
overriding `random()`; each drawn from mid-stream (a Gaussian pending, `shuffle`, `choices`, `sample`)."""
import random


class Biased(random.Random):
    def __init__(self, seed, bias):
        super().__init__(seed)
        self.bias = bias
        self.calls = 0

    def random(self):
        self.calls += 1
        return min(0.999999, super().random() * self.bias)


class Tagged(random.Random):
    def __init__(self, seed, tag):
        super().__init__(seed)
        self.tag = tag
        self.log = []


def work(i, n=40):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def main(inp):
    b = Biased(inp["seed"], 0.9)
    t = Tagged(inp["seed"] + 1, "t")
    out = []
    for i in range(inp["n"]):
        g = t.gauss(0, 1)  # the second normal of each pair stays pending
        deck = list(range(12))
        b.shuffle(deck)
        ch = t.choices("abcde", weights=[5, 1, 1, 1, 2], k=4)
        t.log.append(work(i) % 100)
        out.append([round(g, 9), deck[:3], ch, b.sample(range(100), 3), round(b.uniform(1, 2), 9), b.calls,
                    len(t.log)])
    return [out[-3:], sum(o[5] for o in out), t.tag, sum(t.log)]
