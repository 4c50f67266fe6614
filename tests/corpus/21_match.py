from dataclasses import dataclass, field
@dataclass
class P:
    x: int
    y: int
    tags: list = field(default_factory=list)
def classify(o):
    match o:
        case P(x=0, y=0):
            return "origin"
        case P(x=x, y=0) if x > 5:
            return f"xaxis{x}"
        case {"k": v, **rest}:
            return f"map{v}{len(rest)}"
        case [a, b, *others]:
            return f"seq{a}{b}{len(others)}"
        case _:
            return "other"
def main(inp):
    out = {}
    for i in range(inp["n"]):
        objs = [P(i % 3, 0), P(0, 0), {"k": i, "z": 1}, [i, i + 1, 3, 4], 7]
        for o in objs:
            c = classify(o)
            out[c] = out.get(c, 0) + 1
        s = 0
        for j in range(800):
            s += j % (i + 1)
        out["s"] = out.get("s", 0) + s
    return out
