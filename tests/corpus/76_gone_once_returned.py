"""What a generator's frame held dies when the generator returns, even after a checkpoint was tried (and had
to wait) while that generator ran. A try that waits raises inside the job's thread; an exception that kept
the capture's frames would keep, through them, the frames of the job they were called from, and so, once
those return, what they held: a weak reference would see it alive until the next collection.

Here the tries land in a method C calls (`__del__`, run by the store that drops the object), inside a
generator it drives, so they wait for the store to finish; meanwhile the generator returns. The work main
does itself is where the checkpoints are taken."""
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


LATE = []


class Batch:
    """A batch of work done when a variable lets it go."""

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
            LATE.append(w() is not None)  # the generator has returned: what its frame held is gone
        LATE.append(t)


def spin(r):
    s = r
    for k in range(1500):
        s = (s * 17 + k) % 1000003
    return s


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        batch = Batch(r)
        batch = None
        out.append((LATE[-1] + spin(r)) % 1000003)
    return [sum(out) % 1000003, sum(1 for x in LATE if x is True)]
