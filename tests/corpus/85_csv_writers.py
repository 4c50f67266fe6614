"""Reports written row by row with `csv.writer` and `csv.DictWriter` into StringIO buffers and into a sink
object of the job's own (its `write` method counts what it is given), for the whole run: a csv writer cannot
pickle itself, so every checkpoint was refused while one was held (here, always)."""
import csv
import io


class Sink:
    def __init__(self):
        self.parts = []
        self.chars = 0

    def write(self, s):
        self.parts.append(s)
        self.chars += len(s)
        return len(s)


def fare(i):
    h = i
    for _ in range(60):
        h = (h * 1103515245 + 12345) % 2147483648
    return round(2.5 + (h % 4000) / 100, 2)


def main(inp):
    n = inp["n"]
    plain = io.StringIO()
    rows = csv.writer(plain, delimiter=";", quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    table = io.StringIO()
    named = csv.DictWriter(table, ["ride", "zone", "fare"], extrasaction="ignore")
    named.writeheader()
    sink = Sink()
    counted = csv.writer(sink)
    for i in range(n):
        f = fare(i)
        rows.writerow([i, f"zone {i % 7}", f])
        named.writerow({"ride": i, "zone": f"z,{i % 3}", "fare": f, "extra": "dropped"})
        if i % 5 == 0:
            counted.writerows([[i, f], [i + 0.5, -f]])
    return {"plain": [len(plain.getvalue()), plain.getvalue()[-40:]], "table": table.getvalue()[-60:],
            "sink": [sink.chars, len(sink.parts), sink.parts[-1]]}
