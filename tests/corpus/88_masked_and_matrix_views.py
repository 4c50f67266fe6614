"""numpy masked arrays and matrices written through views of them held across checkpoints: a window of a masked
array (its mask a view of the whole one's), a hard-masked copy and a strided view of it, rows and columns of an
`np.matrix`. Views of ndarray subclasses with attributes of their own were saved as copies: a write through the
view after a restore no longer reached the array under it."""
import numpy as np


def main(inp):
    n, rounds = inp["n"], inp["rounds"]
    base = np.arange(n, dtype=float)
    ma = np.ma.masked_array(base, mask=np.arange(n) % 7 == 0)
    win = ma[n // 4: 3 * n // 4]
    hard = np.ma.masked_array(np.zeros(n // 2), mask=np.arange(n // 2) % 5 == 0, hard_mask=True).copy()
    every2 = hard[::2]
    m = np.matrix(np.zeros((8, 8)))
    row, col = m[3], m[:, 5]
    seen = []
    for r in range(rounds):
        for i in range(r % 3, len(win), 3):
            win[i] = win[i] + r  # unmasks a masked item of `ma` too (a soft mask)
        for i in range(len(every2)):
            every2[i] = r + i  # a hard mask keeps masked items as they were
        for j in range(8):
            row[0, j] += j * r
            col[j, 0] -= r
        if r % 10 == 0:
            seen.append([float(base.sum()), int(ma.mask.sum()), float(hard.sum()), float(m.sum())])
    return {"seen": seen, "base": float(base.sum()), "masked": int(np.ma.count_masked(ma)),
            "win": float(win.sum()), "hard": float(hard.data.sum()), "hard_masked": int(hard.mask.sum()),
            "m": m.tolist()[3], "col": m[:, 5].T.tolist()[0]}
