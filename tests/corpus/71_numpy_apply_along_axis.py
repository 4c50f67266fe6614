"""numpy's apply_along_axis calls a Python function per slice while it holds an `_array_converter` (which cannot
pickle itself) in a local: checkpoints land inside the calls. Arrays, a nested list, float32 input with a
Python scalar argument, functions returning scalars and vectors, and apply_over_axes."""
import numpy as np


def row_stat(r, scale=1.0):
    s = 0.0
    for v in r:
        s = (s * 1.0001 + float(v) * scale) % 997.0
    return s


def row_pair(r):
    lo = hi = float(r[0])
    for v in r:
        lo, hi = min(lo, float(v)), max(hi, float(v))
    return np.array([lo, hi, hi - lo])


def main(inp):
    rng = np.random.default_rng(inp["seed"])
    out = []
    for k in range(inp["rounds"]):
        m = rng.random((inp["rows"], 120))
        out.append(np.apply_along_axis(row_stat, 1, m).round(6).tolist()[:4])
        out.append(np.apply_along_axis(row_stat, 0, m[:40], scale=0.5).round(6).tolist()[:4])
        lst = m[:30, :20].tolist()
        out.append(np.apply_along_axis(row_pair, 1, lst).round(6).tolist()[-2:])
        f32 = m[:50].astype(np.float32)
        r = np.apply_along_axis(lambda v: float(v.sum()) * 1.5, 1, f32)
        out.append([str(r.dtype), round(float(r.sum()), 3)])
        out.append(np.apply_over_axes(np.sum, m[:20, :20].reshape(4, 5, 20), [0, 2]).round(6).tolist())
    return out
