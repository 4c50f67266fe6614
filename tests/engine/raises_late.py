def check(i):
    if i == 900:
        raise ValueError(f"item {i} is bad")
    return i


def main(inp):
    total = 0
    for i in range(1000):
        for j in range(10000):
            total += j
        total += check(i)
    return total
