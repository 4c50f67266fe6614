STATE = 0


def main(inp):
    def bump(k):
        global STATE
        STATE += k
        return STATE

    vals = []
    for i in range(inp["n"]):
        vals.append(bump(i % 9))
        s = 0
        for j in range(300):
            s += j
    return [STATE, vals[-5:]]
