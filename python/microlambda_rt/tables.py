"""Encoders for the CPython 3.11 exception table and location table, which a morph re-encodes after prepending
its prologue (the inverses of ``dis._parse_exception_table`` and ``code.co_positions()``). Pure.
"""

def _varint_be(out, v, first):
    chunks = [v & 63]
    v >>= 6
    while v:
        chunks.append(v & 63)
        v >>= 6
    chunks.reverse()
    last = len(chunks) - 1
    for i, c in enumerate(chunks):
        b = c | (0x40 if i < last else 0)
        if i == 0 and first:
            b |= 0x80
        out.append(b)


def _encode_exception_table(entries):
    out = bytearray()
    for e in entries:
        _varint_be(out, e.start, True)
        _varint_be(out, e.end - e.start, False)
        _varint_be(out, e.target, False)
        _varint_be(out, (e.depth << 1) | int(e.lasti), False)
    return bytes(out)


def _varint(out, v):
    while v >= 64:
        out.append(0x40 | (v & 63))
        v >>= 6
    out.append(v)


def _encode_locations(positions, firstlineno):
    out = bytearray()
    line = firstlineno
    i, n = 0, len(positions)
    while i < n:
        p = positions[i]
        j = i + 1
        while j < n and j - i < 8 and positions[j] == p:
            j += 1
        length = j - i
        if p is None or p[0] is None:
            out.append(0x80 | (15 << 3) | (length - 1))
        else:
            ln, eln, col, ecol = p
            out.append(0x80 | (14 << 3) | (length - 1))
            delta = ln - line
            _varint(out, (-delta << 1) | 1 if delta < 0 else delta << 1)
            _varint(out, (eln - ln) if eln is not None else 0)
            _varint(out, col + 1 if col is not None else 0)
            _varint(out, ecol + 1 if ecol is not None else 0)
            line = ln
        i = j
    return bytes(out)
