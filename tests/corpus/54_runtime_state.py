"""State a job sets up at run time outside its variables: attributes on the members of its own Enum class,
classes defined inside a function (their qualified name shows in a dataclass repr), the interpreter's recursion
limit raised for a deep recursion, and a list nested deeper than the default limit's reach when pickled."""
import dataclasses
import enum
import sys


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)


def main(inp):
    sys.setrecursionlimit(4000)

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    Level.LOW.hits, Level.HIGH.hits = 0, 0
    nested = []
    tip = nested
    for _ in range(700):  # deeper than pickle reaches under the default limit with the job's frames below it
        tip.append([])
        tip = tip[0]
    out = []
    for r in range(inp["rounds"]):
        p = Point(r, r + 1)
        for i in range(inp["n"]):
            (Level.LOW if i % 3 else Level.HIGH).hits += 1
        tip.append(r)
        out.append([repr(p), depth(2500 + r), Level.LOW.hits, Level.HIGH.hits])
    leaves, node = 0, nested
    while node:
        leaves += sum(1 for v in node if type(v) is int)
        node = node[0] if node and type(node[0]) is list else None
    return [out, leaves, sys.getrecursionlimit()]
