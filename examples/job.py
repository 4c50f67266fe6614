"""A job with a little state worth keeping: the longest Collatz chain starting below 12 * n, found step by step.

Runs about 0.1 s with n = 1000 and about half a second with n = 10000 (a debug build), long enough to be
checkpointed several times:

    microlambda run examples/job.py:main --input '{"n": 1000}' --preempt-every 20 --stats
    microlambda submit examples/job.py --input '{"n": 1000}' --wait    # against a running testbed
"""


def chain_length(k):
    steps = 0
    while k != 1:
        k = k // 2 if k % 2 == 0 else 3 * k + 1
        steps += 1
    return steps


def main(x):
    n = x.get("n", 1000) if isinstance(x, dict) else 1000
    best, best_at, total = 0, 1, 0
    for k in range(1, 12 * n):
        length = chain_length(k)
        total += length
        if length > best:
            best, best_at = length, k
    return {"below": 12 * n, "start": best_at, "length": best, "total_steps": total}
