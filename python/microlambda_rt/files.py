"""Where an open file is being read, when CPython does not say: a text file that a ``for`` loop reads (``tell()``
raises "telling position disabled by next() call" while the file is iterated), the ``newline`` a text file was
opened with (shown nowhere), and a ``csv.reader`` between two records (it pickles nothing of itself).

Each is read from the object's C fields, laid out as CPython 3.11's ``Modules/_io/textio.c`` and
``Modules/_csv.c`` lay them out. Before anything is read the layout is checked against what the object shows
to Python (its buffer, encoding, errors, chunk size, raw file, dialect, line number at the offsets expected,
the type's size and dict and weakref offsets); a layout that does not hold is refused, named, never guessed.
A ``csv.writer`` keeps nothing between rows: it is saved as what its traversal shows (its ``write`` and dialect).
Two fields are written on restore, each checked first in the object made again: the line endings a reopened
file has met (``f.newlines``: three bits of its newline decoder), and the lines and line number of a csv reader.

The position of a text file being iterated is found as ``tell()`` finds it, from a *snapshot*: a byte offset
where the decoder held no bytes, its flags there, and the bytes read since (CPython keeps one only while it may
be asked to tell). The snapshot is made again: the text the file decoded last (``decoded_chars``) came from the
last chunk it read, whose length in bytes its ``b2cratio`` gives; the bytes before that chunk which the
decoder still held, and a ``\\r`` it held back to see whether ``\\n`` followed, are found by trying the few
possibilities, each decoded by a fresh decoder of the same kind from the file's own bytes (read with
``os.pread``, which moves nothing) and kept only if it gives exactly that text and leaves the decoder exactly
in the live one's state. The position is then a ``seek`` cookie that reads those bytes again and skips the
characters the job has read, so the reopened file holds the same decoded text, the same count of it used and
a decoder in the same state as the live one. The cookie is checked by seeking a second file object to it.
"""

import codecs
import ctypes
import gc
import io
import os
import struct

# textio.c (3.11): the header (16), ok and detached (ints), chunk_size, buffer, encoding, encoder, decoder, readnl,
# errors, writenl, nine flag chars from line_buffering to finalizing, encodefunc, encoding_start_of_stream,
# decoded_chars, decoded_chars_used, pending_bytes, pending_bytes_count, snapshot, b2cratio, raw, weakreflist,
# dict.
_T_OK, _T_CHUNK, _T_BUFFER, _T_ENCODING, _T_DECODER, _T_READNL, _T_ERRORS = 16, 24, 32, 40, 56, 64, 72
_T_FLAGS, _T_DECODED, _T_USED, _T_PENDING, _T_RATIO, _T_RAW = 88, 120, 128, 136, 160, 168
_T_SIZE, _T_WEAKREF, _T_DICT = 192, 176, 184
# The flag chars, from _T_FLAGS on.
_LINE_BUFFERING, _WRITE_THROUGH, _UNIVERSAL, _TRANSLATE, _WRITETRANSLATE, _SEEKABLE, _HAS_READ1, _TELLING, \
    _FINALIZING = range(9)
_MAX_HELD = 16  # bytes a decoder may hold between chunks that are searched for


class FileStateError(TypeError):
    """The position of an open file, or the state of a reader over one, cannot be read back."""


def _word(addr):
    return struct.unpack("<q", ctypes.string_at(addr, 8))[0]


def _object_at(addr):
    """The object a checked field points to (NULL as None)."""
    return None if addr == 0 else ctypes.cast(addr, ctypes.py_object).value


class _Text:
    """The C fields of a TextIOWrapper that are read, once its layout is checked."""

    __slots__ = ("decoder", "readnl", "universal", "translate", "telling", "decoded", "used", "ratio")


def _text_fields(f):
    t = type(f)
    where = f"a text file ({f.name!r})" if isinstance(getattr(f, "name", None), str) else "a text file"
    bad = FileStateError(f"cannot pickle {where}: its C fields are not where CPython 3.11's textio.c puts them")
    if t is not io.TextIOWrapper or struct.calcsize("P") != 8 or (t.__basicsize__, t.__weakrefoffset__,
                                                                   t.__dictoffset__) != (_T_SIZE, _T_WEAKREF, _T_DICT):
        raise bad
    a = id(f)
    ok, detached = struct.unpack("<2i", ctypes.string_at(a + _T_OK, 8))
    flags = ctypes.string_at(a + _T_FLAGS, 9)
    raw = getattr(f.buffer, "raw", None)
    if (ok, detached) != (1, 0) or any(c > 1 for c in flags) or _word(a + _T_CHUNK) != f._CHUNK_SIZE \
            or _word(a + _T_BUFFER) != id(f.buffer) or _word(a + _T_ENCODING) != id(f.encoding) \
            or _word(a + _T_ERRORS) != id(f.errors) or raw is None or _word(a + _T_RAW) != id(raw) \
            or _word(a + _T_PENDING) != 0 or flags[_SEEKABLE] != 1:
        raise bad
    s = _Text()
    s.universal, s.translate, s.telling = bool(flags[_UNIVERSAL]), bool(flags[_TRANSLATE]), bool(flags[_TELLING])
    readnl = _word(a + _T_READNL)
    if readnl != 0 and _word(readnl + 8) != id(str):
        raise bad
    s.readnl = _object_at(readnl)
    if s.universal != (s.readnl is None or s.readnl == "") or s.translate != (s.readnl is None):
        raise bad
    dec = _word(a + _T_DECODER)
    if dec == 0 or (s.universal and _word(dec + 8) != id(io.IncrementalNewlineDecoder)):
        raise bad
    s.decoder = _object_at(dec)
    if s.universal and s.decoder.newlines != f.newlines:
        raise bad
    decoded = _word(a + _T_DECODED)
    if decoded != 0 and _word(decoded + 8) != id(str):
        raise bad
    s.decoded = _object_at(decoded) or ""
    s.used = _word(a + _T_USED)
    (s.ratio,) = struct.unpack("<d", ctypes.string_at(a + _T_RATIO, 8))
    if not 0 <= s.used <= len(s.decoded) or not s.ratio >= 0:
        raise bad
    return s


def text_newline(f):
    """The ``newline`` argument `f` was opened with (None, '', '\\n', '\\r' or '\\r\\n'): how its lines end when
    read. ``f.newlines`` is not it: that is which endings it has met so far (a ``\\r\\n`` file read in universal
    mode, opened again with ``newline='\\r\\n'``, gave its lines with ``\\r\\n`` on)."""
    return _text_fields(f).readnl


def _fresh_decoder(f, s):
    d = codecs.getincrementaldecoder(f.encoding)(f.errors)
    return io.IncrementalNewlineDecoder(d, s.translate) if s.universal else d


def _decoder_at(f, s, start, flags):
    """A decoder in the state a seek to `start` with `flags` gives (textio.c resets it at the start of the
    stream with no flags, where a decoder such as utf-16's expects a byte order mark)."""
    d = _fresh_decoder(f, s)
    if start or flags:
        d.setstate((b"", flags))
    return d


def _snapshot(f, s, end, state):
    """(start, flags, final, data): a byte offset where the decoder held nothing, its flags there, whether the
    text was decoded as the end of the file, and the bytes from there to `end`, which decoded so give exactly the
    text the file decoded last and leave the decoder in `state`."""
    if not s.decoded:
        nbytes = 0
    else:
        nbytes = round(s.ratio * len(s.decoded))
        if abs(nbytes - s.ratio * len(s.decoded)) > 1e-3:
            raise FileStateError("cannot pickle a text file being iterated: the length of the chunk it read last "
                                 "is not a whole number of bytes")
    fd = f.buffer.raw.fileno()
    initial = _fresh_decoder(f, s).getstate()[1]
    held = state[1] & ~1 if s.universal else state[1]
    cr = (0, 1) if s.universal and s.decoded[:1] in ("\r", "\n") else (0,)
    finals = (False, True) if nbytes == 0 and s.decoded else (False,)
    for k in range(_MAX_HELD + 1):
        start = end - nbytes - k
        if start < 0:
            break
        data = os.pread(fd, end - start, start)
        if len(data) != end - start:
            break
        tried = {held | c for c in cr} | ({initial} if start == 0 else set())
        for flags in sorted(tried):
            for final in finals:
                d = _decoder_at(f, s, start, flags)
                try:
                    if d.decode(data, final) == s.decoded and d.getstate() == state:
                        return start, flags, final, data
                except (UnicodeError, ValueError):
                    pass
    raise FileStateError("cannot pickle a text file being iterated: the bytes it decoded last could not be found "
                         "again (a decoder that keeps state other than its flags?)")


def _pack_cookie(start, flags, feed, skip, final):
    """A TextIOWrapper seek cookie as textio.c packs it: start (64 bits), decoder flags, bytes to feed, chars to
    skip (32-bit ints), then whether to decode them as the end of the file, little-endian."""
    if not (0 <= flags < 2**31 and 0 <= feed < 2**31 and 0 <= skip < 2**31):
        raise FileStateError("cannot pickle a text file being iterated: its position does not fit a seek cookie")
    return start | flags << 64 | feed << 96 | skip << 128 | int(final) << 160


def text_position(f, path, opts):
    """The position of the text file `f` as a seek cookie: ``f.tell()`` when the file can tell, else (while a
    ``for`` loop or ``next()`` reads it) made again from its C fields, and checked by seeking a second file
    object over `path`, opened with `opts`, to it."""
    s = _text_fields(f)
    if s.telling:
        return f.tell()
    end = f.buffer.tell()
    state = s.decoder.getstate()
    start, flags, final, data = _snapshot(f, s, end, state)
    if type(s.decoder) is not type(_fresh_decoder(f, s)):
        raise FileStateError("cannot pickle a text file being iterated: its decoder is not the one its encoding "
                             "makes")
    if s.used == 0:
        cookie = _pack_cookie(start, flags, 0, 0, False)
        want = (start, "", _decoder_at(f, s, start, flags).getstate())
    else:
        cookie = _pack_cookie(start, flags, len(data), s.used, final)
        want = (end, s.decoded[s.used:], state)
    mode, encoding, errors, newline = opts
    with open(path, mode, encoding=encoding, errors=errors, newline=newline) as g:
        g.seek(cookie)
        t = _text_fields(g)
        if (g.buffer.tell(), t.decoded[t.used:], t.decoder.getstate()) != want:
            raise FileStateError("cannot pickle a text file being iterated: a file opened again at the position "
                                 "found is not where it is")
    return cookie


# The IncrementalNewlineDecoder of a file read in universal newlines mode (textio.c, 3.11): the header, the
# decoder it wraps, errors, then one unsigned int of bits: pendingcr, translate, and three for the endings seen.
_NL_SIZE, _NL_BITS = 40, 32
_SEEN = {"\r": 1, "\n": 2, "\r\n": 4}


def _seen(newlines):
    return sum(_SEEN[k] for k in ((newlines,) if isinstance(newlines, str) else newlines or ()))


def set_newlines_seen(f, newlines):
    """Make ``f.newlines`` (the line endings met so far, which the decoder keeps as three bits and no call sets)
    what it was in the live file: a reopened file has met only the endings of the text it read again."""
    s = _text_fields(f)
    d = s.decoder
    if not s.universal or type(d).__basicsize__ != _NL_SIZE:
        raise FileStateError("the decoder of a file opened again is not where CPython 3.11's textio.c puts it")
    (bits,) = struct.unpack("<I", ctypes.string_at(id(d) + _NL_BITS, 4))
    if bits & 1 != d.getstate()[1] & 1 or bits >> 1 & 1 != s.translate or bits >> 2 & 7 != _seen(d.newlines):
        raise FileStateError("the decoder of a file opened again does not keep its flags where CPython 3.11 does")
    ctypes.c_uint.from_address(id(d) + _NL_BITS).value = bits & ~(7 << 2) | _seen(newlines) << 2
    if f.newlines != newlines:
        raise FileStateError("the line endings a file opened again has met could not be set")


# _csv.c (3.11): the header, input_iter, dialect, fields, state (an int), field, field_size, field_len,
# numeric_field (an int), line_num (unsigned long).
_R_ITER, _R_DIALECT, _R_FIELDS, _R_STATE, _R_FIELD_LEN, _R_LINE_NUM, _R_SIZE = 16, 24, 32, 40, 64, 80, 88
_DIALECT_ATTRS = ("delimiter", "doublequote", "escapechar", "lineterminator", "quotechar", "quoting",
                  "skipinitialspace", "strict")


def _reader_layout(r):
    if type(r).__basicsize__ != _R_SIZE or struct.calcsize("P") != 8 or _word(id(r) + _R_DIALECT) != id(r.dialect) \
            or _word(id(r) + _R_LINE_NUM) != r.line_num:
        raise FileStateError("cannot pickle a csv.reader: its C fields are not where CPython 3.11's _csv.c puts them")


def reduce_csv_reader(r):
    """A ``csv.reader`` between two records, as the iterator it reads lines from, its dialect and its line
    number; made again by ``csv.reader`` and given that line number. One in the middle of a record (a quoted
    field that spans lines is read by one ``next()``; the engine finds that call from C and waits it out) or
    left half-read by an error is refused."""
    _reader_layout(r)
    a = id(r)
    fields = _word(a + _R_FIELDS)
    (state,) = struct.unpack("<i", ctypes.string_at(a + _R_STATE, 4))
    if fields != 0 and (_word(fields + 8) != id(list) or len(_object_at(fields))) or state != 0 \
            or _word(a + _R_FIELD_LEN) != 0:
        raise FileStateError("cannot pickle a csv.reader in the middle of a record")
    return _make_csv_reader, (_object_at(_word(a + _R_ITER)), r.dialect, r.line_num)


def _make_csv_reader(lines, dialect, line_num):
    """The reader is made over an empty iterator, then given `lines` and `line_num` in its fields: `lines` may
    be a closed file (a reader kept after its `with` block), which ``csv.reader`` would refuse to iterate."""
    import csv

    empty = iter(())
    r = csv.reader(empty, dialect)
    _reader_layout(r)
    if r.dialect is not dialect or _word(id(r) + _R_ITER) != id(empty):
        raise FileStateError("a csv.reader made again does not hold its dialect and lines where _csv.c puts them")
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(lines))
    ctypes.c_void_p.from_address(id(r) + _R_ITER).value = id(lines)
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(empty))
    ctypes.c_ulong.from_address(id(r) + _R_LINE_NUM).value = line_num
    return r


def reduce_csv_writer(w):
    """A ``csv.writer``, as the ``write`` it sends each row to and its dialect: it keeps nothing between two
    rows (``writerow`` starts every row afresh; one in progress calls Python only from C, which the engine waits
    out). Its traversal, which ``gc.get_referents`` shows, holds exactly the dialect, the write callable, the
    module's Error class and its type; anything else is refused."""
    import _csv

    parts = gc.get_referents(w)
    rest = [p for p in parts if p is not w.dialect and p is not _csv.Error and p is not type(w)]
    if len(parts) != 4 or len(rest) != 1 or not callable(rest[0]):
        raise FileStateError("cannot pickle a csv.writer: its traversal does not show one write callable")
    return _make_csv_writer, (rest[0], w.dialect)


class _WriteTo:
    """What ``csv.writer`` takes the ``write`` attribute of (the writer keeps that callable, not this)."""

    def __init__(self, write):
        self.write = write


def _make_csv_writer(write, dialect):
    import csv

    return csv.writer(_WriteTo(write), dialect)


def reduce_csv_dialect(d):
    """A csv dialect as the reader holds it (``_csv.Dialect``, which refuses to be pickled), by its settings."""
    return _make_csv_dialect, (tuple(getattr(d, a) for a in _DIALECT_ATTRS),)


def _make_csv_dialect(values):
    import _csv

    return _csv.Dialect(**dict(zip(_DIALECT_ATTRS, values)))
