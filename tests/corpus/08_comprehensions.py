def main(inp):
    n = inp["n"]
    out = []
    for r in range(n):
        sq = [x * x for x in range(300) if x % 3 != r % 3]
        table = {x: [y for y in range(x % 5)] for x in range(60)}
        uniq = {(x * r) % 31 for x in range(200)}
        g = sum(x for x in sq if x % 2)
        nested = [[i * j for j in range(8)] for i in range(8)]
        out.append([len(sq), sum(len(v) for v in table.values()), len(uniq), g % 1000, nested[r % 8][3]])
    return out[-15:]
