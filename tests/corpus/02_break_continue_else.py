def search(limit, step):
    found = []
    i = 0
    while True:
        i += step
        if i > limit:
            break
        if i % 7 == 0:
            continue
        for j in range(2, 50):
            if i % j == 0 and j > 40:
                found.append((i, j))
                break
        else:
            if i % 101 == 3:
                found.append((i, 0))
    else:
        found.append("never")
    return found


def main(inp):
    out = []
    for s in range(1, inp["n"]):
        r = search(2000, s)
        out.append(len(r))
        if s % 17 == 0:
            continue
        out.append(r[-1][0] if r else -1)
    return out[-30:]
