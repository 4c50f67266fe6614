"""The job's input, held by the running code while the job changes parts of it in place: what it leaves as it
came is saved by reference to the input (src/py/statics.rs, `index_input`) and decoded again from the job's
input at a restore; what it changed, or what holds something it changed, is saved by value. Every kind of change
a dict or list takes (a key set, deleted, set back to the same value; an item appended, popped, replaced, a
list shifted by an insert at its head, sorted, cleared and refilled with the same items, a string or a big int
popped and a new equal-sized one appended, which CPython puts at the freed one's address), rows taken out of the
input and kept elsewhere, an iterator over the input's list, and `is` between the input's parts and the job's
own lists, checked after every step (a restored object at a wrong path, or a stale copy, shows); the `id()`s of
the input's rows kept as keys, which must name the restored rows (saved by reference or by value)."""


def check(inp, rows, picked, by_id, extra):
    assert inp["rows"] is rows
    assert extra["ids"][id(extra["first"])] == extra["first"]["id"]
    assert all(extra["fixed_ids"][id(f)] == f["k"] for f in extra["fixed"])  # never changed: by reference
    for r in picked:
        assert by_id[r["id"]] is r, r["id"]
    assert any(r is extra["first"] for r in rows)
    return sum(len(r["tags"]) for r in rows) + len(picked)


def main(inp):
    rows = inp["rows"]
    cfg = inp["cfg"]
    nested = inp["nested"]
    names, bigs = inp["names"], inp["bigs"]
    popped = []
    by_id = {r["id"]: r for r in rows}
    picked = []
    extra = {"first": rows[0], "log": [], "ids": {id(r): r["id"] for r in rows}, "fixed": inp["fixed"]}
    extra["fixed_ids"] = {id(f): f["k"] for f in inp["fixed"]}
    total = 0
    it = iter(inp["order"])
    for rnd in range(inp["n"]):
        i = next(it, None)
        if i is None:
            it = iter(inp["order"])
            i = next(it)
        r = rows[i % len(rows)]
        step = rnd % 11
        if step == 0:
            r["tags"].append(rnd % 7)
        elif step == 1 and len(r["tags"]) > 1:
            r["tags"].pop()
        elif step == 2:
            r["w"] = r["w"]  # the same value: no change at all
        elif step == 3 and rnd % 33 == 3:
            cfg["scale"] = cfg["scale"] + 1
        elif step == 4 and rnd % 44 == 4:
            nested[rnd % len(nested)].insert(0, rnd)  # shifts the rest of that list
        elif step == 5 and r not in picked:
            picked.append(r)
        elif step == 6 and rnd % 66 == 6:
            nested.sort(key=len)
        elif step == 7 and rnd % 77 == 7 and "note" in cfg:
            del cfg["note"]
        elif step == 8 and rnd % 88 == 8:
            kept = list(nested[0])
            nested[0].clear()
            nested[0].extend(kept)
        elif step == 9 and rnd % 99 == 9:
            rows.insert(0, rows.pop())  # the rows shift: by_id still names each row
        elif step == 10 and rnd % 110 == 10:
            popped.append(names.pop()[0])  # what a restore brought back shows here (the string itself is freed)
            names.append("".join(("n", "o", "p", "q", chr(97 + rnd % 26))))  # as long as "carol", nothing else made
            popped.append(bigs.pop() % 1000)
            bigs.append(100000 + rnd)
        extra["log"].append((r["id"], cfg["scale"]))
        for _ in range(200):  # work between the changes, where most checkpoints fall
            total = (total * 31 + r["id"] + len(r["tags"])) % 1000003
        total += check(inp, rows, picked, by_id, extra)
    return {
        "total": total,
        "rows": [[r["id"], r["tags"], r["w"]] for r in rows],
        "cfg": cfg,
        "nested": nested,
        "names": names,
        "popped": popped,
        "bigs": bigs,
        "picked": [r["id"] for r in picked],
        "log": extra["log"][-20:],
        "same": all(by_id[r["id"]] is r for r in rows),
        "ids": sum(extra["ids"].get(id(r)) == r["id"] for r in rows),
    }
