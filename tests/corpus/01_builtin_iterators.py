import itertools


def main(inp):
    n = inp["n"]
    data = list(range(n))
    d = {f"k{i}": i * i for i in range(n)}
    acc = 0
    for i, v in enumerate(data):
        acc += i * v % 97
    for a, b in zip(data, reversed(data)):
        acc += (a ^ b) % 13
    for k, v in d.items():
        acc += len(k) + v % 7
    for k in d.keys():
        acc += ord(k[-1])
    for v in d.values():
        acc -= v % 5
    for x, y in itertools.product(range(30), repeat=2):
        acc += x * y % 3
    for c in itertools.islice(itertools.count(5, 3), n):
        acc += c % 11
    chunks = []
    for t in itertools.zip_longest(data[:50], "abc", fillvalue=0):
        chunks.append(str(t))
    return [acc, len(chunks), chunks[-1]]
