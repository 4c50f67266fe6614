"""Counter: a mostly idle job (a small pure-Python loop that sleeps 5 ms every few steps).

Input: {"steps": N, "sleep_every": K}  (defaults 2000 and 20: about 0.5 s, mostly asleep).
Output: the steps done, the sleeps taken and a checksum of the state; the same input gives the same output.
Good for evacuation benchmarks: its state is tiny and it spends most of its time waiting.
"""

import time


def main(x):
    x = x or {}
    steps = int(x.get("steps", 2000))
    sleep_every = max(1, int(x.get("sleep_every", 20)))
    counts = [0] * 10
    acc = 1
    sleeps = 0
    for i in range(steps):
        acc = (acc * 48271 + i) % 2147483647
        counts[acc % 10] += 1
        if (i + 1) % sleep_every == 0:
            time.sleep(0.005)
            sleeps += 1
    return {"steps": steps, "sleeps": sleeps, "acc": acc, "counts": counts}
