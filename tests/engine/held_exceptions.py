import time


class Custom(Exception):
    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


def main(inp):
    held = []
    try:
        open("/nonexistent/microlambda")
    except OSError as e:
        held.append(e)
    try:
        raise ImportError("no module", name="mod_x", path="/p/x.py")
    except ImportError as e:
        held.append(e)
    try:
        raise Custom("bad", 7)
    except Custom as e:
        held.append(e)
    try:
        "\xff".encode("ascii")
    except UnicodeEncodeError as e:
        held.append(e)
    k = KeyError("k")
    k.add_note("a note")
    held.append(k)
    for _ in range(inp["n"]):  # checkpoints land here, with every exception created and held
        time.sleep(0.001)
    o, imp, c, u, k = held
    return [
        [o.errno, o.strerror, o.filename, o.args],
        [imp.name, imp.path, imp.msg, imp.args],
        [c.args, c.code],
        [u.encoding, u.object, u.start, u.end, u.reason],
        [k.args, k.__notes__],
    ]
