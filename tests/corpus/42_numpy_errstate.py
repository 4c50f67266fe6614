"""numpy's floating-point error state, a context variable holding a C capsule: set for the whole job
(`np.seterr`, `np.setbufsize`), and for blocks (`with np.errstate(...)`, whose token the block holds), read back
after the checkpoint by what numpy does on a division by zero."""
import numpy as np


def spin(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s


def main(inp):
    out = []
    np.seterr(over="ignore")
    np.setbufsize(16384)
    one, zero = np.float64(1.0), np.float64(0.0)
    for r in range(inp["rounds"]):
        with np.errstate(divide="raise"):
            s = spin(2000)
            try:
                out.append(float(one / zero))
            except FloatingPointError:
                out.append(("raised", s))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = spin(1000)
            out.append((float(one / zero), s, np.getbufsize()))
    out.append((np.geterr(), np.getbufsize()))
    return out
