# Objects that are views of other objects stay views across a checkpoint: dict views and a mappingproxy see
# later insertions, dict and OrderedDict iterators see values changed after the checkpoint, a memoryview still writes into its
# bytearray, a held re.Match and held exceptions keep every field, and an enum of the module keeps its members.
import collections
import enum
import re
import types


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


PAT = re.compile(r"([a-z]+)(\d+)")


def main(inp):
    d = {"a": 0, "b": 1}
    keys, values, items = d.keys(), d.values(), d.items()
    proxy = types.MappingProxyType(d)
    buf = bytearray(b"........")
    mv = memoryview(buf)
    words = memoryview(bytearray(8)).cast("H")
    held = []
    try:
        open("/nonexistent/corpus-file")
    except OSError as e:
        held.append(e)
    try:
        raise ImportError("gone", name="mod_y", path="/q/y.py")
    except ImportError as e:
        held.append(e)
    trace = []
    checksum = 0
    for i in range(inp["n"]):
        d[f"k{i}"] = i
        mv[i % 8] = 97 + i % 26
        words[i % 4] = i % 65536
        m = PAT.search(f"xx abc{i} def{i + 1}", (i % 3) * 4)
        src = {j: j for j in range(30)}
        it = iter(src.items())
        rit = reversed(src.values())
        acc = 0
        for j in range(25):
            k, v = next(it)
            acc += v + next(rit)
            src[(k + 3) % 30] = -j  # a value ahead of both iterators changes
        od = collections.OrderedDict((j, f"v{j}") for j in range(12))
        oit, orit = iter(od.items()), reversed(od.values())
        for j in range(5):
            k, v = next(oit)
            acc += len(v) + len(next(orit))
            od[(k + 2) % 12] = f"w{j}{i}"  # ahead of the forward iterator
            od[11 - k - 1] = "z" * (j + 1)  # ahead of the backward one
        level = Level.HIGH if (acc + i) % 2 else Level.LOW
        trace.append([acc, m.group(1), m.group(2), m.span(), level.name])
        checksum += acc * (i % 7) + m.end() + level.value
        trace = trace[-6:]
    o, imp = held
    return [
        len(keys), sum(values), len(items), len(proxy), sorted(proxy)[:3],
        buf.decode(), list(words), trace[-5:], checksum,
        [o.errno, o.filename], [imp.name, imp.path, imp.msg],
    ]
