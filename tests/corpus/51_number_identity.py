"""Numbers two places share stay one object across checkpoints (pickle writes ints and floats by value):
scikit-learn's clone() checks that each parameter it passed to the new estimator `is` the one the estimator
kept, and a checkpoint between the two failed that check after the restore. A number only a tuple and one
other place share is the known exception (docs/CHECKPOINTS.md), so none is checked here."""


class Params:
    pass


def work(n, r):
    s = 0
    for i in range(n):
        s = (s * 31 + i + r) % 1000003
    return s


def main(inp):
    kept, lost, total = 0, [], 0
    for r in range(inp["rounds"]):
        params = {"alpha": r / 7.0 + 0.5, "n": 10**12 + r}  # no local holds them: a dict and an attribute do
        est = Params()
        est.alpha, est.n = params["alpha"], params["n"]
        ratio = r * 0.25 + 0.125
        pair = [ratio, ratio]
        total = (total + work(inp["n"], r)) % 1000003
        same = (est.alpha is params["alpha"], est.n is params["n"], pair[0] is pair[1], ratio is pair[1])
        if all(same):
            kept += 1
        else:
            lost.append((r, same))
    return {"kept": kept, "lost": lost[:5], "total": total}
