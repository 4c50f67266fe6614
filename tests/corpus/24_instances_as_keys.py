class Key:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def __hash__(self):
        return hash((self.a, self.b))

    def __eq__(self, other):
        return isinstance(other, Key) and (self.a, self.b) == (other.a, other.b)

    def __repr__(self):
        return f"Key({self.a},{self.b})"


def main(inp):
    table = {}
    for i in range(inp["n"]):
        k = Key(i % 17, i % 5)
        table[k] = table.get(k, 0) + i
        s = 0
        for j in range(300):
            s += j
    items = sorted((repr(k), v) for k, v in table.items())
    return [len(table), items[:5]]
