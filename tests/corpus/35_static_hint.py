__microlambda_static__ = ("TABLE",)

TABLE = [i * i for i in range(50000)]
LIVE = []


def main(inp):
    s = 0
    for i in range(inp["n"]):
        s += TABLE[(i * 7) % len(TABLE)]
        LIVE.append(s % 97)
        for j in range(200):
            s += j % 3
    return [s, LIVE[-5:], len(LIVE)]
