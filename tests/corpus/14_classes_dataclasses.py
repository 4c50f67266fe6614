from dataclasses import dataclass, field


class Base:
    created = 0

    def __init__(self, v):
        Base.created += 1
        self.v = v

    @property
    def double(self):
        return self.v * 2

    def score(self):
        return self.v


class Child(Base):
    def score(self):
        return super().score() * 3 + self.double


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


@dataclass
class Acc:
    name: str
    items: list = field(default_factory=list)
    total: int = 0

    def add(self, x):
        self.items.append(x)
        self.total += x


def main(inp):
    acc = Acc("main")
    objs = []
    for i in range(inp["n"]):
        o = Child(i) if i % 2 else Base(i)
        objs.append(Slotted(o.score(), o.double))
        acc.add(o.score() % 17)
        s = 0
        for j in range(300):
            s += j % 3
        if len(objs) > 20:
            objs = objs[-10:]
    return [acc.total, len(acc.items), Base.created, [(x.a, x.b) for x in objs[-3:]], acc.name]
