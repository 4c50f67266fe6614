"""A ctypes type made at run time (CFUNCTYPE, a Structure defined in a function), held by a frame for part of
the run: checkpoints while it is live are refused (it cannot be made again by name), the others are taken,
and the result is exact."""
import ctypes


def with_types(n):
    Point = type("Point", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int), ("y", ctypes.c_int)]})
    Fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
    t = 0
    for i in range(n):
        p = Point(i, i % 5)
        t += p.x * p.y
    return t, Fn.__name__, Point.__name__


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        s = 0
        for i in range(inp["n"]):
            s += (i * r) % 11
        out.append([s, *with_types(inp["m"])])
    return out
