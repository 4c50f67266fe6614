"""numpy's legacy global RNG when numpy.random is not imported as the job starts (numpy 2 imports it on first use
of `np.random`): a job that seeds it while it runs and draws across checkpoints draws, after each restore, the
numbers one process draws."""
import numpy as np


def spin(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        if r == 3:
            np.random.seed(inp["seed"])
        s = spin(2000)
        if r >= 3:
            out.append((round(float(np.random.rand()), 12), s))
    return out[-5:], len(out), round(sum(v for v, _ in out), 9)
