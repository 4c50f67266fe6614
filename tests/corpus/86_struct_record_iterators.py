"""Binary records read with `struct.iter_unpack` for the whole run: over a bytearray the job keeps appending to
between passes, over a bytes copy, and through a generator suspended in the middle of one. The iterator
cannot pickle itself, so every checkpoint was refused while one was held (here, always)."""
import struct

REC = struct.Struct("<IhdB")


def checksum(vals):
    h = 17
    for v in vals:
        h = (h * 31 + int(v * 1000)) % 1000003
    return h


def records(buf):
    for rec in struct.iter_unpack("<IhdB", buf):
        yield rec


def main(inp):
    n = inp["n"]
    buf = bytearray()
    for i in range(n):
        buf += REC.pack(i, (i * 37) % 2000 - 1000, i / 7.0, i % 251)
    totals = []
    for rnd in range(inp["rounds"]):
        acc = 0
        it = REC.iter_unpack(buf)
        head = next(it)
        for ident, delta, x, tag in it:
            acc = (acc + ident * delta + int(x * tag) + checksum((x, delta, tag))) % 1000000007
        totals.append((head[0], acc))
        buf += REC.pack(n + rnd, rnd, 0.5, rnd % 7)
    part = bytes(buf[REC.size * 10:REC.size * (n // 2)])
    gen = records(part)
    first = [next(gen) for _ in range(3)]
    rest = sum(1 for r in gen if r[1] > 0)
    buf += b"\0" * REC.size  # each iterator let go of the bytearray when it ran out
    return {"totals": totals, "first": first, "rest": rest, "len": len(buf)}
