import sys
sys.setrecursionlimit(5000)
def rec(d, acc):
    if d == 0:
        s = 0
        for i in range(20000):
            s += i % 7
        return acc + s
    x = 0
    for i in range(50):
        x += i * d
    return rec(d - 1, acc + x) + 1
def main(inp):
    total = 0
    for r in range(inp["n"]):
        total += rec(300, r)
    return total
