def main(inp):
    data = list(range(inp["n"]))
    out = 0
    for r in range(3):
        # sorted() calls the key function from C: no instant inside it can be resumed.
        ordered = sorted(data, key=lambda v: (v * 7919 + r) % 1000003)
        out += ordered[len(ordered) // 2]
    return out
