"""Benchmark job whose time is spent in a generator that a for loop drives through C: `zip(range(n), gen)` calls the
generator's `__next__` from C after advancing the range, so no instant inside the generator can be resumed, and
there is no call from C to wait on either (the loop goes on at the same instruction). A checkpoint request is
tried at every instant for a few milliseconds, then parked, and taken when the loop's own frame runs; the job
should run at (nearly) its own speed meanwhile."""


def terms(n):
    for i in range(n):
        s = 0
        for j in range(60):
            s += (i * j) % 7
        yield s


def main(inp):
    total = 0
    for _ in range(inp["rounds"]):
        for k, v in zip(range(inp["n"]), terms(inp["n"])):
            total += v * (k % 3)
    return total
