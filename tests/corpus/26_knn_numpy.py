import numpy as np


def main(inp):
    rng = np.random.default_rng(3)
    train = rng.normal(size=(400, 8))
    labels = (train[:, 0] + train[:, 1] > 0).astype(int)
    correct = 0
    preds = []
    for i in range(inp["n"]):
        q = rng.normal(size=8)
        d = np.sqrt(((train - q) ** 2).sum(axis=1))
        nn = np.argsort(d)[:5]
        vote = int(labels[nn].sum() >= 3)
        truth = int(q[0] + q[1] > 0)
        correct += vote == truth
        preds.append(vote)
        s = 0
        for j in range(100):
            s += j
    return [int(correct), preds[-10:], round(float(train.mean()), 8)]
