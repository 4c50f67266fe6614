class Box:
    def __init__(self):
        self.v = 0
        self.d = {"x": 0}


def main(inp):
    b = Box()
    arr = [0] * 10
    out = []
    for i in range(inp["n"]):
        tmp = i * 3
        if (m := tmp % 7) > 3:
            arr[i % 10] += m
        b.v += m
        b.d["x"] -= 1
        first, *middle, last = [i, i + 1, i + 2, i + 3]
        if 0 <= m < 5 < tmp:
            out.append(f"{first}-{len(middle)}-{last}")
        del tmp
        try:
            tmp
        except NameError:
            pass
        lv = locals()
        s = 0
        for j in range(200):
            s += j % 4
        out.append(len(lv) > 3)
    return [arr, b.v, b.d, out[-6:], sum(1 for x in out if x is True)]
