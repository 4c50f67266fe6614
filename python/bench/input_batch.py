"""A batch job that reads a long input (a list of request dicts) and keeps a reply per request: the shape of
`microlambda-bench paper`'s batches and of most offloaded batch work. Its checkpoints hold the input by
reference where the job left it unchanged (src/py/statics.rs, `index_input`), else by value.

    python3 python/bench/input_batch.py 3500 1500 > /tmp/in.json   # requests, work per request
    target/release/microlambda run python/bench/input_batch.py --input @/tmp/in.json --preempt-every 50 \
        --keep-running --stats
"""
import json
import sys


def main(inp):
    replies = []
    for r in inp["requests"]:
        s = 0
        for k in range(inp.get("work", 40)):
            s = (s + r["a"] * k + r["b"]) % 1000003
        replies.append({"id": r["id"], "s": s})
    return sum(x["s"] for x in replies) % 1000003


if __name__ == "__main__":
    n, work = int(sys.argv[1]), int(sys.argv[2])
    reqs = [{"id": i, "a": i % 977, "b": i % 13} for i in range(n)]
    print(json.dumps({"work": work, "requests": reqs}, separators=(",", ":")))
