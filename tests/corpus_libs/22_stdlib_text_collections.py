"""The standard library on text and collections: json round trips, re with groups and substitution callbacks,
Counter/defaultdict/deque/OrderedDict/ChainMap, heapq merges, itertools pipelines, a small log analysis."""
import collections
import heapq
import itertools
import json
import re
import string

LINE = re.compile(r"(?P<ts>\d{2}:\d{2}:\d{2}) (?P<lvl>[A-Z]+) \[(?P<mod>[\w.]+)\] (?P<msg>.*)")
NUM = re.compile(r"-?\d+(?:\.\d+)?")


def make_log(n):
    lvls = ["INFO", "DEBUG", "WARN", "ERROR"]
    mods = ["net.tcp", "db.pool", "api.user", "api.order", "cache"]
    words = ["took", "retry", "user", "order", "ms", "bytes", "ok", "fail"]
    for i in range(n):
        ts = f"{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}"
        msg = " ".join(words[(i * k) % len(words)] for k in range(1, 5)) + f" {i % 97} {(i * 7) % 13}.{i % 10}"
        yield f"{ts} {lvls[(i * i) % 4]} [{mods[i % 5]}] {msg}"


def main(inp):
    by_lvl = collections.Counter()
    by_mod = collections.defaultdict(list)
    last = collections.deque(maxlen=5)
    words = collections.Counter()
    for line in make_log(inp["n"]):
        m = LINE.match(line)
        if not m:
            continue
        by_lvl[m["lvl"]] += 1
        nums = [float(x) for x in NUM.findall(m["msg"])]
        by_mod[m["mod"]].append(sum(nums))
        words.update(w for w in m["msg"].split() if w.isalpha())
        if m["lvl"] == "ERROR":
            last.append(m["ts"])
    heaps = [sorted(v[:200]) for v in by_mod.values()]
    merged = list(itertools.islice(heapq.merge(*heaps), 20))
    largest = heapq.nlargest(5, ((round(sum(v), 3), k) for k, v in by_mod.items()))
    groups = {k: len(list(g)) for k, g in itertools.groupby(sorted(by_mod, key=len), key=len)}
    combos = list(itertools.combinations(sorted(by_lvl), 2))
    acc = list(itertools.accumulate(itertools.chain.from_iterable(v[:3] for v in by_mod.values()), max))
    od = collections.OrderedDict(sorted(words.items()))
    od.move_to_end(next(iter(od)))
    cm = collections.ChainMap({"lvl": dict(by_lvl)}, {"mods": len(by_mod), "lvl": None})
    redacted = re.sub(r"\d+", lambda m: "#" * len(m.group()), "user 123 paid 4567 at 08:40")
    doc = json.dumps({"lvl": by_lvl, "last": list(last), "words": words.most_common(4)}, sort_keys=True, indent=1)
    back = json.loads(doc, object_pairs_hook=collections.OrderedDict)
    tmpl = string.Template("$n lines, $e errors").substitute(n=inp["n"], e=by_lvl["ERROR"])
    return {
        "lvl": sorted(by_lvl.items()),
        "merged": merged,
        "largest": largest,
        "groups": groups,
        "combos": combos,
        "acc": acc,
        "od": list(od)[-3:],
        "cm": [cm["lvl"] == dict(by_lvl), cm["mods"]],
        "redacted": redacted,
        "json": [len(doc), list(back)],
        "tmpl": tmpl,
        "split": re.split(r"[;,]\s*", "a, b;c,  d"),
        "pairwise": list(itertools.pairwise(sorted(by_lvl.values()))),
    }
