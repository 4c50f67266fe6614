"""Files kept in variables after their `with` blocks closed them (the usual way to read or write a whole file),
and a StringIO closed after its text was taken: a closed file came back as a closed StringIO (no `name`, no
`mode`), and a closed StringIO cannot pickle itself, so every later checkpoint was refused until the variable
went away, here for the whole job."""
import io
import os
import tempfile


def score(line, k):
    h = k
    for ch in line:
        h = (h * 131 + ord(ch)) % 1000003
    return h


def main(inp):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rides.csv")
        with open(path, "w", encoding="utf-8") as out:
            for i in range(inp["rows"]):
                out.write(f"{i},{i * 7 % 13},{i * 31 % 97}\n")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        with open(path, "rb") as b:
            size = len(b.read())
        buf = io.StringIO()
        buf.write("report\n")
        text = buf.getvalue()
        buf.close()
        total = 0
        for k in range(inp["rounds"]):
            for line in lines:
                total = (total + score(line, k)) % 1000000007
        shown = [os.path.basename(out.name), out.mode, f.closed, b.mode, buf.closed]
    return {"total": total, "size": size, "text": text, "shown": shown}
