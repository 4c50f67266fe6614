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


def _encode_into(out, positions, line):
    """Append the entries of `positions` to `out`, the line before them `line`; returns the line after them."""
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
    return line


def _read_varint(table, i):
    v = shift = 0
    while True:
        b = table[i]
        i += 1
        v |= (b & 63) << shift
        shift += 6
        if not b & 64:
            return v, i


def _leading_entries(code):
    """The positions of the entries of `code`'s location table up to its first that gives a line of its own (the
    line of every entry is relative to the line before it, so the entries after that one read the same
    wherever the table starts), and the offset of the entries after it."""
    table, line = code.co_linetable, code.co_firstlineno
    out = []
    i = 0
    while i < len(table):
        first = table[i]
        kind, length = (first >> 3) & 15, (first & 7) + 1
        i += 1
        if kind == 15:
            p = (None, None, None, None)
        elif kind < 10:  # short form: the line before it, a column in 0..79, a width in 0..15
            col = kind * 8 + ((table[i] >> 4) & 7)
            p = (line, line, col, col + (table[i] & 15))
            i += 1
        elif kind < 13:  # one line form: the line before it plus 0..2
            line += kind - 10
            p = (line, line, table[i], table[i + 1])
            i += 2
        else:
            v, i = _read_varint(table, i)
            line += -(v >> 1) if v & 1 else v >> 1
            if kind == 13:  # no columns
                p = (line, line, None, None)
            else:
                span, i = _read_varint(table, i)
                col, i = _read_varint(table, i)
                ecol, i = _read_varint(table, i)
                p = (line, line + span, col - 1 if col else None, ecol - 1 if ecol else None)
        out.extend([p] * length)
        if kind >= 10 and kind != 15:
            return out, i
    return out, i


def _prefixed_locations(prefix, code, leading):
    """The location table of `code` with code units of `prefix`'s positions put before its own (a morph's
    prologue): the prologue's entries, then the code's own table, copied but for its leading entries
    (`leading`: `_leading_entries(code)`), which are encoded again after the prologue's line. Encoding the
    whole code again cost a restore ~0.15 ms per frame of 400 instructions."""
    out = bytearray()
    line = _encode_into(out, prefix, code.co_firstlineno)
    _encode_into(out, leading[0], line)
    out += code.co_linetable[leading[1]:]
    return bytes(out)
