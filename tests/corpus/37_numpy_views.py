# numpy views (a row, a column, a reshape, a transpose, a strided slice, a dtype view, an array over a
# bytearray, a read-only view) keep writing into the same memory across a checkpoint.
import numpy as np


def main(inp):
    m = np.zeros((6, 8))
    row, col, flat, t, every2 = m[1], m[:, 2], m.reshape(-1), m.T, m[::2, ::3]
    ints = np.zeros(8, dtype=np.int64)
    halves = ints.view(np.int32)
    raw = bytearray(32)
    over = np.frombuffer(raw, dtype=np.int32)
    ro = m[2:4]
    ro.flags.writeable = False
    total = 0.0
    for i in range(inp["n"]):
        row[i % 8] += 1
        col[i % 6] += 2
        flat[i % 48] += 0.5
        t[i % 8, i % 6] -= 0.25
        every2[i % 3, i % 3] += 3
        halves[i % 16] += i % 7
        over[i % 8] += 1
        s = 0
        for j in range(40):
            s += j * (i % 5)
        total += float(ro.sum()) + s
    try:
        ro[0, 0] = 1.0
        ro_ok = "writable"
    except ValueError:
        ro_ok = "read-only"
    return [m.round(3).tolist(), ints.tolist(), bytes(raw).hex(), total, ro_ok,
            bool(np.shares_memory(row, m)), bool(np.shares_memory(over, np.frombuffer(raw, dtype=np.uint8)))]
