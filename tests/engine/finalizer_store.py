"""A finalizer run from C by the store that drops its object (`batch = None`), followed by a line that loads a
local: CPython 3.11 quickens the store and that load into one superinstruction (STORE_FAST__LOAD_FAST), so the
finalizer returns into the load, not to a dispatch. A checkpoint asked for inside the finalizer waits for main's
next instruction; the tries that waited inside it must keep nothing the job lets go of: a weak reference to what
a finished generator held is dead, as in plain CPython."""

import weakref


class Box:
    def __init__(self, r):
        self.r = r


def rows(n, box):
    held = box
    for i in range(n):
        s = 0
        for k in range(40):
            s = (s * 31 + i + k + held.r) % 1000003
        yield s


ALIVE = []
DONE = []


class Batch:
    def __init__(self, r):
        self.r = r

    def __del__(self):
        t = 0
        for j in range(40):
            box = Box(self.r + j)
            w = weakref.ref(box)
            for v in rows(5, box):
                t = (t * 7 + v) % 1000003
            del box
            ALIVE.append(w() is not None)
        DONE.append(t)


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        batch = Batch(r)
        batch = None
        out.append(DONE[-1])
    return [sum(out) % 1000003, sum(ALIVE)]
