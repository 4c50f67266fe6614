import collections


def main(inp):
    od = collections.OrderedDict((i, i) for i in range(10))
    it = iter(od.values())  # keys and values are the same objects: which view it walks cannot be told
    total = 0
    for i in range(inp["n"]):
        total += i % 7
    return [total, next(it)]
