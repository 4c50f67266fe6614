"""`for row in csv.reader(f)` and `csv.DictReader` over files read line by line (the C reader keeps its dialect,
its line number and the file it reads; the file is being iterated, so its tell() refuses), with quoted fields
that span lines, a semicolon dialect, a dialect class, and a reader over a list of lines. Checkpoints land in the
loops' bodies, between records; each reader must go on from the same row with the same `line_num`.

The files are written once into a directory of their own under the temporary directory (made by a link, so a
file is never rewritten: a checkpoint names a file by its size and modification time) and left there."""
import csv
import hashlib
import io
import os
import tempfile


def work(fields, rounds):
    h = 0
    for _ in range(rounds):
        for s in fields:
            for ch in s:
                h = (h * 131 + ord(ch)) % 1000000007
    return h


class Pipes(csv.Dialect):
    delimiter = "|"
    quotechar = "'"
    doublequote = True
    skipinitialspace = True
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL


def tables():
    rows = [["id", "city", "note", "amount"]]
    cities = ["Helsinki", "S\u00e3o Paulo", "K\u00f6ln", "Z\u00fcrich", "\u6771\u4eac"]
    for i in range(1500):
        note = f"line one\nline two of {i}" if i % 11 == 0 else (f'say "hi" {i}' if i % 7 == 0 else f"n{i}, ok")
        rows.append([str(i), cities[i % len(cities)], note, f"{i * 3.25:.2f}"])
    out = {}
    for name, kw in (("comma.csv", {}), ("semi.csv", {"delimiter": ";"}), ("pipes.csv", {"dialect": Pipes})):
        buf = io.StringIO(newline="")
        csv.writer(buf, **kw).writerows(rows)
        out[name] = buf.getvalue().encode()
    return out


def ensure(directory, name, data):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        os.unlink(tmp)
    return path


def main(inp):
    rounds = inp["rounds"]
    files = tables()
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:12]
    directory = os.path.join(tempfile.gettempdir(), f"microlambda-corpus-74-{digest}")
    os.makedirs(directory, exist_ok=True)
    paths = {name: ensure(directory, name, data) for name, data in files.items()}
    text = files["semi.csv"].decode().splitlines(keepends=True)[:400]
    del files  # the contents need not be kept
    out = {}
    with open(paths["comma.csv"], newline="", encoding="utf-8") as f:
        h = 0
        for row in csv.reader(f):
            h = (h * 31 + work(row, rounds)) % 1000000007
        out["reader"] = h
    with open(paths["comma.csv"], newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        h = 0
        lines = []
        for row in r:
            h = (h * 31 + work(row, rounds)) % 1000000007
            lines.append(r.line_num)
        out["reader_lines"] = [header, h, len(lines), sum(lines), r.line_num]
    with open(paths["semi.csv"], newline="", encoding="utf-8") as f:
        total = 0.0
        seen = []
        d = csv.DictReader(f, delimiter=";")
        for rec in d:
            total += float(rec["amount"])
            seen.append(work([rec["city"], rec["note"]], rounds) % 1009)
        out["dict_reader"] = [d.fieldnames, round(total, 2), sum(seen), d.line_num]
    with open(paths["pipes.csv"], newline="", encoding="utf-8") as f:
        d = csv.DictReader(f, dialect=Pipes, restkey="rest")
        h = 0
        for rec in d:
            h = (h * 31 + work(list(rec.values()), rounds)) % 1000000007
        out["pipes"] = [h, d.line_num, d.reader.dialect.delimiter]
    r = csv.reader(text, delimiter=";")
    h = 0
    for row in r:
        h = (h * 31 + work(row, rounds)) % 1000000007
    out["list_lines"] = [h, r.line_num]
    return out
