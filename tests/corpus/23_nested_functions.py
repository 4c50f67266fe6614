def main(inp):
    results = []
    for i in range(inp["n"]):
        def inner(x, k=i):
            def deeper(y):
                t = 0
                for j in range(150):
                    t += (x + y + j) % (k % 5 + 2)
                return t
            return deeper(x * 2) + k
        results.append(inner(i % 13))
    return [sum(results), results[-5:]]
