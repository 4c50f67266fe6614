"""The 3.11 exception-table and location-table encoders (``microlambda_rt.tables``), round-tripped through the
interpreter's own decoders (``dis._parse_exception_table`` and ``code.co_positions()``)."""

import dis
import unittest

from microlambda_rt.analysis import CodeInfo, _Entry
from microlambda_rt.tables import _encode_exception_table, _encode_into, _leading_entries, _prefixed_locations

from .helpers import first_code, stdlib_codes


def _encode_locations(positions, firstlineno):
    out = bytearray()
    _encode_into(out, positions, firstlineno)
    return bytes(out)


def parsed(code, table):
    return [(e.start, e.end, e.target, e.depth, e.lasti)
            for e in dis._parse_exception_table(code.replace(co_exceptiontable=table))]


class ExceptionTable(unittest.TestCase):
    def test_compiler_tables_are_re_encoded_byte_for_byte(self):
        codes = [c for c in stdlib_codes() if c.co_exceptiontable]
        self.assertGreater(len(codes), 10)
        for code in codes:
            self.assertEqual(_encode_exception_table(CodeInfo(code).table), code.co_exceptiontable, code.co_qualname)

    def test_large_values_round_trip(self):
        code = first_code("def f():\n    pass\n", "f")
        entries = [_Entry(0, 1, 2, 0, False), _Entry(63, 64, 4095, 64, True), _Entry(300, 70000, 5000, 200, True)]
        got = parsed(code, _encode_exception_table(entries))
        self.assertEqual(got, [(e.start * 2, e.end * 2, e.target * 2, e.depth, e.lasti) for e in entries])

    def test_empty_table(self):
        self.assertEqual(_encode_exception_table([]), b"")


class LocationTable(unittest.TestCase):
    def test_compiler_positions_round_trip(self):
        for code in stdlib_codes():
            pos = list(code.co_positions())
            table = _encode_locations(pos, code.co_firstlineno)
            self.assertEqual(list(code.replace(co_linetable=table).co_positions()), pos, code.co_qualname)

    def test_missing_positions_negative_deltas_and_wide_columns(self):
        code = first_code("def f():\n    return 1\n", "f")
        n = len(code.co_code) // 2
        line = code.co_firstlineno
        shapes = [None, (line + 40, line + 41, 200, 5000), (line - 3, line - 3, 0, 1), (line, None, None, None)]
        pos = [shapes[i % len(shapes)] for i in range(n)]
        pos = [(None, None, None, None) if p is None else p for p in pos]
        table = _encode_locations(pos, code.co_firstlineno)
        self.assertEqual(list(code.replace(co_linetable=table).co_positions()), pos)

    def test_runs_longer_than_eight_units(self):
        code = first_code("def f(a):\n" + "    a = a + 1\n" * 20 + "    return a\n", "f")
        n = len(code.co_code) // 2
        pos = [(code.co_firstlineno + 1, code.co_firstlineno + 1, 4, 9)] * n
        table = _encode_locations(pos, code.co_firstlineno)
        self.assertEqual(list(code.replace(co_linetable=table).co_positions()), pos)


class PrefixedLocationTable(unittest.TestCase):
    """A morph's table: its prologue's positions, then the code's own table copied but for its leading entries."""

    def morph_positions(self, prefix, code):
        morph = code.replace(co_code=bytes([dis.opmap["NOP"], 0]) * len(prefix) + code.co_code,
                             co_linetable=_prefixed_locations(prefix, code, _leading_entries(code)))
        return list(morph.co_positions())

    def test_every_compiler_table_reads_the_same_after_prologues_of_any_line(self):
        codes = list(stdlib_codes())
        self.assertGreater(len(codes), 10)
        kinds = set()
        for code in codes:
            own = list(code.co_positions())
            kinds.update((b >> 3) & 15 for b in code.co_linetable[:1])
            line = code.co_firstlineno
            for prefix in ([], [(line + 7, line + 9, 3, 11)] * 3, [(None, None, None, None), (1, 1, 0, 4)],
                           [(line - 1, line - 1, None, None)] * 10):
                self.assertEqual(self.morph_positions(prefix, code), prefix + own, code.co_qualname)
        self.assertGreater(len(kinds), 1, "the codes' first entries are of one kind only: not a test of the others")

    def test_leading_entries_read_every_form(self):
        # Entries before the first with a line of its own: no location (15) and short forms (0-9) read the line
        # before them; one-line (10-12), no-column (13) and long (14) forms set it.
        line = 10
        table = bytes([0x80 | (15 << 3) | 1, 0x80 | (2 << 3) | 0, 0x35, 0x80 | (11 << 3) | 2, 4, 9, 0x80 | (14 << 3)])
        code = first_code("def f():\n    return 1\n", "f").replace(co_firstlineno=line)
        positions, rest = _leading_entries(code.replace(co_linetable=table))
        self.assertEqual(positions, [(None, None, None, None)] * 2 + [(10, 10, 19, 24)] + [(11, 11, 4, 9)] * 3)
        self.assertEqual(rest, 6)
        for kind, tail, want in ((13, bytes([5 << 1 | 1]), (5, 5, None, None)),
                                 (14, bytes([3 << 1, 2, 1, 0]), (13, 15, 0, None))):
            positions, rest = _leading_entries(code.replace(co_linetable=bytes([0x80 | (kind << 3)]) + tail))
            self.assertEqual((positions, rest), ([want], 1 + len(tail)))


if __name__ == "__main__":
    unittest.main()
