import random


def main(inp):
    random.seed(1234)
    own = random.Random(99)
    vals = []
    for i in range(inp["n"]):
        a = random.random()
        b = own.randint(0, 1000)
        c = random.choice("abcdef")
        vals.append([round(a, 6), b, c])
        s = 0
        for j in range(300):
            s += j
    own2 = random.Random(own.random())
    return [vals[-8:], own2.randint(0, 10**9), random.getrandbits(40)]
