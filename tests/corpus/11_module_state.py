COUNTS = {}
SEEN = []
TOTAL = 0
CONFIG = {"scale": 3}


def record(k):
    global TOTAL
    COUNTS[k] = COUNTS.get(k, 0) + 1
    SEEN.append(k)
    TOTAL += k * CONFIG["scale"]
    if len(SEEN) > 50:
        del SEEN[:25]


def main(inp):
    global CONFIG
    for i in range(inp["n"]):
        record(i % 13)
        s = 0
        for j in range(400):
            s += j % 7
        if i == inp["n"] // 2:
            CONFIG = {"scale": 5}
    return [COUNTS, SEEN[-5:], TOTAL, CONFIG]
