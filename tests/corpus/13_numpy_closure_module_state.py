import numpy as np, random
STATE = {"calls": 0}
LOG = []
def make_counter():
    count = 0
    def inc(k=1):
        nonlocal count
        count += k
        return count
    return inc
def main(inp):
    global LOG
    rng = np.random.default_rng(1)
    r = random.Random(5)
    random.seed(7)
    arr = np.zeros(1000)
    c = make_counter()
    vals = []
    for i in range(inp["n"]):
        STATE["calls"] += 1
        arr += rng.random(1000)
        v = c(i)
        sq = [x * x for x in range(200) if x % 3]
        vals.append(v + sum(sq) + r.randint(0, 100) + random.randint(0, 10))
        LOG.append(i)
        if len(LOG) > 5:
            LOG = LOG[-3:]
    return [float(arr.sum()), vals[-10:], STATE, LOG]
