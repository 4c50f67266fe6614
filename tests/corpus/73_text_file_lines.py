"""Text files read line by line by `for line in f` (where CPython's tell() refuses: "telling position disabled
by next() call"), by `f.readline()` loops and by a binary `for line in f`, in the encodings and line endings
that make the position hard to find: \\r\\n translated and untranslated, mixed endings, multi-byte UTF-8 split
across the file's 8 KiB chunks, latin-1, a UTF-8 byte order mark, UTF-16, an explicit newline, undecodable bytes
replaced. Checkpoints land inside the loops; each file must go on from the same line, with the same line ending
counts (`f.newlines`).

The files are written once into a directory of their own under the temporary directory (made by a link, so a
file is never rewritten and never seen half-written: a checkpoint names a file by its size and modification
time) and left there, so that a checkpoint resumed later still finds its file."""
import hashlib
import os
import tempfile


def work(s, rounds):
    h = 0
    for _ in range(rounds):
        for ch in s:
            h = (h * 131 + ord(ch)) % 1000000007
    return h


def texts():
    words = ["alpha", "b\u00eata", "gr\u00fc\u00dfe", "\u20ac20", "na\u00efve", "\U0001f600ok", "z"]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(i % 9 + 1)) for i in range(1400)]
    mixed = "".join(line + ("\r", "\n", "\r\n")[i % 3] for i, line in enumerate(lines))
    latin = "".join(f"caf\u00e9 {i} \u00e0 \u00ff {'x' * (i % 13)}\n" for i in range(1400))
    return {
        "lf.txt": ("".join(line + "\n" for line in lines).encode(), {"encoding": "utf-8"}),
        "crlf.txt": ("".join(line + "\r\n" for line in lines).encode(), {"encoding": "utf-8"}),
        "crlf_raw.txt": ("".join(line + "\r\n" for line in lines).encode(), {"encoding": "utf-8", "newline": ""}),
        "mixed.txt": (mixed.encode(), {"encoding": "utf-8"}),
        "mixed_raw.txt": (mixed.encode(), {"encoding": "utf-8", "newline": ""}),
        "latin1.txt": (latin.encode("latin-1"), {"encoding": "latin-1"}),
        "bom.txt": ("".join(line + "\n" for line in lines).encode("utf-8-sig"), {"encoding": "utf-8-sig"}),
        "utf16.txt": ("".join(line + "\r\n" for line in lines[:700]).encode("utf-16"), {"encoding": "utf-16"}),
        "explicit.txt": (mixed.encode(), {"encoding": "utf-8", "newline": "\r\n"}),
        "replaced.txt": (b"".join(b"ok %d \xff\xe2\x82 end\n" % i for i in range(1400)),
                         {"encoding": "utf-8", "errors": "replace"}),
    }


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
    files = texts()
    digest = hashlib.sha256(repr(sorted((k, v[0]) for k, v in files.items())).encode()).hexdigest()[:12]
    directory = os.path.join(tempfile.gettempdir(), f"microlambda-corpus-73-{digest}")
    os.makedirs(directory, exist_ok=True)
    paths = {name: ensure(directory, name, data) for name, (data, _) in files.items()}
    files = {name: opts for name, (_, opts) in files.items()}  # the contents need not be kept
    out = {}
    for name, opts in files.items():
        path = paths[name]
        n = h = 0
        with open(path, **opts) as f:
            for line in f:
                n += 1
                h = (h * 31 + work(line, rounds)) % 1000000007
            out[name] = [n, h, f.newlines]
    # readline() loops (tell() works here) over \r\n text, and a binary file iterated
    path = paths["crlf.txt"]
    n = h = 0
    with open(path, encoding="utf-8") as f:
        while True:
            line = f.readline()
            if not line:
                break
            n += 1
            h = (h * 31 + work(line, rounds)) % 1000000007
        out["readline"] = [n, h, f.newlines]
    n = h = 0
    with open(path, "rb") as f:
        for line in f:
            n += 1
            h = (h * 31 + work(line.decode(), rounds)) % 1000000007
        out["binary"] = [n, h]
    # next() and readline() and read() mixed on one file
    with open(paths["mixed.txt"], encoding="utf-8") as f:
        got = []
        for i, line in enumerate(f):
            got.append(work(line, rounds) % 97)
            if i % 5 == 0:
                got.append(work(f.readline() + f.read(3), rounds) % 89)
        out["interleaved"] = [len(got), sum(got)]
    return out
