def step(i, k=3):
    s = 0
    for j in range(200):
        s += (i * j) % k
    return s


def main(inp):
    total = 0
    for i in range(inp["n"]):
        total += step(i, k=5)
    return {"total": total}
