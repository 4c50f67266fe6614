"""Open files and csv readers over them (``microlambda_rt.files``) through the job-state pickler: a text file a
``for`` loop reads comes back yielding exactly the lines the live one goes on to yield, for every line it may
stop at, whatever its encoding and line endings; a csv reader between records goes on from the same row with
the same line number."""

import csv
import io
import os
import tempfile
import unittest

from microlambda_rt.files import FileStateError, text_newline

from .test_pickler import JobTest, checkpoint

CHUNK = 8192


def _stops(n, chunk_lines=()):
    """Which lines to stop after: all of a short file, else the first few, every 37th and those around where a
    chunk of the file ends (where the decoder holds half a character or a \\r)."""
    if n <= 120:
        return range(n)
    near = {i + d for i in chunk_lines for d in range(-2, 3)}
    return sorted({*range(4), *range(0, n, 37), *(i for i in near if 0 <= i < n), n - 1})


class _Files(JobTest):
    """A test with a directory for the files it reads."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()
        super().tearDown()

    def write(self, data, name="data.txt"):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


class TextFiles(_Files):
    def resumes_everywhere(self, data, read=lambda f: next(f), **opts):
        """Stop after k reads for each k tried, checkpoint, and compare what the restored file yields with what
        the live one does."""
        path = self.write(data)
        with open(path, **opts) as f:
            total = sum(1 for _ in f)
        ends, at = [], 0
        with open(path, "rb") as f:  # the lines around which a chunk of the file ends
            for i, line in enumerate(f):
                at += len(line)
                if at // CHUNK != (at - len(line)) // CHUNK:
                    ends.append(i)
        for k in _stops(total, ends):
            with self.subTest(k=k), open(path, **opts) as f:
                for _ in range(k):
                    read(f)
                _, (g,) = checkpoint(self.mod, [f])
                try:
                    self.assertEqual((g.newlines, g._CHUNK_SIZE), (f.newlines, f._CHUNK_SIZE))
                    self.assertEqual(list(g), list(f))
                    self.assertEqual(g.newlines, f.newlines)
                finally:
                    g.close()

    def test_an_ascii_file_iterated_by_a_for_loop(self):
        self.resumes_everywhere(b"".join(b"line %d of the file\n" % i for i in range(3000)))

    def test_crlf_endings_read_in_universal_mode(self):
        self.resumes_everywhere(b"".join(b"row %d\r\n" % i for i in range(4000)))

    def test_crlf_endings_read_untranslated(self):
        self.resumes_everywhere(b"".join(b"row %d\r\n" % i for i in range(4000)), newline="")

    def test_mixed_endings_in_both_universal_modes(self):
        data = b"".join(b"r%d%s" % (i, (b"\r", b"\n", b"\r\n")[i % 3]) for i in range(5000))
        self.resumes_everywhere(data)
        self.resumes_everywhere(data, newline="")

    def test_a_cr_held_back_at_the_end_of_a_chunk(self):
        for pad in range(3):  # the \r of a \r\n at the last byte of a chunk, for some line
            data = b"x" * pad + b"".join(b"abcdef\r\n" for _ in range(3000))
            self.resumes_everywhere(data)
            self.resumes_everywhere(data, newline="")

    def test_explicit_newlines(self):
        data = b"".join(b"a%d\rb\n%s" % (i, b"\r\n") for i in range(3000))
        for nl in ("\n", "\r", "\r\n"):
            with self.subTest(newline=nl):
                self.resumes_everywhere(data, newline=nl)

    def test_multibyte_utf8_split_across_chunks(self):
        for pad in range(4):
            data = b"#" * pad + "".join(f"h\u00e9llo w\u00f6rld \u20ac{i} \U0001f600\n" for i in range(1500)).encode()
            self.resumes_everywhere(data, encoding="utf-8")

    def test_latin1(self):
        self.resumes_everywhere("".join(f"caf\u00e9 {i} \u00e0 \u00ff\n" for i in range(3000)).encode("latin-1"),
                               encoding="latin-1")

    def test_a_byte_order_mark_read_with_utf8_sig(self):
        self.resumes_everywhere("".join(f"\u00e9t\u00e9 {i}\n" for i in range(2000)).encode("utf-8-sig"),
                               encoding="utf-8-sig")

    def test_utf16_with_its_byte_order_mark(self):
        self.resumes_everywhere("".join(f"ligne {i} \u00e9\r\n" for i in range(2000)).encode("utf-16"),
                               encoding="utf-16")

    def test_lines_longer_than_a_chunk(self):
        self.resumes_everywhere("".join("\u00e9" * (i * 997 % 30000) + "\r\n" for i in range(60)).encode())

    def test_other_codecs(self):
        for enc in ("shift_jis", "gb18030", "utf-32", "cp1252"):
            with self.subTest(encoding=enc):
                text = "".join(f"caf\u00e9 {i} \u20ac\r\n" if enc == "cp1252" else f"\u65e5\u672c {i} x\r\n"
                               for i in range(3000))
                self.resumes_everywhere(text.encode(enc), encoding=enc)

    def test_a_stateful_codec_is_resumed_exactly_or_refused_named(self):
        # iso2022_jp's decoder keeps its shift state in its flags: a chunk that begins shifted cannot be decoded
        # again from the flags it has now, and the file is refused until the next chunk.
        path = self.write("".join(f"\u65e5\u672c\u8a9e {i} abc\n" for i in range(3000)).encode("iso2022_jp"))
        exact = refused = 0
        for k in range(0, 3000, 7):
            with open(path, encoding="iso2022_jp") as f:
                for _ in range(k):
                    next(f)
                try:
                    _, (g,) = checkpoint(self.mod, [f])
                except FileStateError as e:
                    self.assertIn("could not be found again", str(e))
                    refused += 1
                    continue
                with g:
                    self.assertEqual(list(g), list(f))
                exact += 1
        self.assertGreater(exact, refused)

    def test_undecodable_bytes_replaced(self):
        data = b"".join(b"ok %d \xff\xe2\x82 end\n" % i for i in range(2500))
        self.resumes_everywhere(data, encoding="utf-8", errors="replace")

    def test_next_then_readline_and_read(self):
        data = "".join(f"\u00e9 {i}\r\n" for i in range(3000)).encode()

        calls = iter(range(10**9))

        def mixed(f):  # a line by next() or by readline(), and every fifth time two characters more by read()
            n = next(calls)
            next(f) if n % 2 else f.readline()
            if n % 5 == 4:
                f.read(2)

        self.resumes_everywhere(data, read=mixed, encoding="utf-8")

    def test_a_readline_loop_keeps_crlf_translated(self):
        # tell() works here; the file used to be opened again with newline='\r\n' (its `newlines` so far), and
        # gave its lines with the \r on.
        self.resumes_everywhere(b"".join(b"row %d\r\n" % i for i in range(300)), read=lambda f: f.readline())

    def test_a_chunk_size_of_its_own(self):
        data = "".join(f"\u00e9 {i}\r\n" for i in range(500)).encode()

        def small_chunks(f):
            f._CHUNK_SIZE = 61
            next(f)

        self.resumes_everywhere(data, read=small_chunks, encoding="utf-8")

    def test_the_newline_it_was_opened_with_is_read(self):
        path = self.write(b"a\r\nb\n")
        for nl in (None, "", "\n", "\r", "\r\n"):
            with open(path, newline=nl) as f:
                f.readline()
                self.assertEqual(text_newline(f), nl)

    def test_a_file_at_its_end_and_one_never_read(self):
        path = self.write(b"one\ntwo\n")
        with open(path) as f, open(path) as fresh:
            list(f)
            _, (g, h) = checkpoint(self.mod, [f, fresh])
            self.assertEqual((g.read(), h.read()), ("", "one\ntwo\n"))
            g.close()
            h.close()

    def test_a_binary_file_iterated(self):
        path = self.write(b"".join(b"b%d\r\n" % i for i in range(3000)))
        for k in (0, 1, 1000, 2999, 3000):
            with open(path, "rb") as f:
                for _ in range(k):
                    next(f)
                _, (g,) = checkpoint(self.mod, [f])
                self.assertEqual(list(g), list(f))
                g.close()

    def test_a_subclass_being_iterated_is_refused_named(self):
        class Text(io.TextIOWrapper):
            pass

        path = self.write(b"a\nb\n")
        with Text(open(path, "rb")) as f:
            next(f)
            with self.assertRaises(Exception):
                checkpoint(self.mod, [f])


class CsvReaders(_Files):
    def rows(self, n):
        lines = [["id", "name", "note"]]
        lines += [[str(i), f"n\u00e9{i}", "two\nlines" if i % 7 == 0 else f"x,{i}"] for i in range(n)]
        buf = io.StringIO()
        csv.writer(buf).writerows(lines)
        return buf.getvalue().encode()

    def test_a_reader_goes_on_from_the_same_row_and_line(self):
        path = self.write(self.rows(2000))
        for k in (0, 1, 7, 8, 500, 2000, 2001):
            with self.subTest(k=k), open(path, newline="", encoding="utf-8") as f:
                r = csv.reader(f)
                for _ in range(k):
                    next(r)
                _, (f2, r2) = checkpoint(self.mod, [f, r])
                self.assertEqual(r2.line_num, r.line_num)
                self.assertEqual([(row, r2.line_num) for row in r2], [(row, r.line_num) for row in r])
                f2.close()

    def test_a_dict_reader_and_its_dialect(self):
        path = self.write(self.rows(300).replace(b",", b";"))
        with open(path, newline="", encoding="utf-8") as f:
            r = csv.DictReader(f, delimiter=";", quoting=csv.QUOTE_MINIMAL)
            for _ in range(10):
                next(r)
            _, (f2, r2) = checkpoint(self.mod, [f, r])
            self.assertEqual(r2.reader.dialect.delimiter, ";")
            self.assertEqual(r2.fieldnames, r.fieldnames)
            self.assertEqual([(row, r2.line_num) for row in r2], [(row, r.line_num) for row in r])
            f2.close()

    def test_a_reader_kept_after_its_file_was_closed(self):
        path = self.write(self.rows(20))
        with open(path, newline="") as f:
            r = csv.reader(f)
            next(r)
        _, (f2, r2) = checkpoint(self.mod, [f, r])
        self.assertTrue(f2.closed)
        self.assertEqual(r2.line_num, 1)
        with self.assertRaisesRegex(ValueError, "closed file"):
            next(r2)
        with self.assertRaisesRegex(ValueError, "closed file"):
            next(r)

    def test_closed_files_come_back_closed_as_the_files_they_were_and_can_be_saved_again(self):
        path = self.write(b"x\n")
        with open(path, "a", encoding="latin-1") as written, open(path, "rb") as read, \
                open(path, "rb", buffering=0) as raw:
            pass
        memory, data = io.StringIO("text"), io.BytesIO(b"bytes")
        memory.close()
        data.close()
        live = [written, read, raw, memory, data]
        _, back = checkpoint(self.mod, live)
        _, again = checkpoint(self.mod, back)  # a closed StringIO in its place refused this second capture
        for was, now in zip(live, again):
            self.assertIs(type(now), type(was))
            self.assertTrue(now.closed)
            with self.assertRaisesRegex(ValueError, "closed file"):
                now.read()
        for was, now in zip(live[:3], again):
            self.assertEqual((now.name, now.mode), (was.name, was.mode))
        self.assertEqual((again[0].encoding, type(again[0].buffer), type(again[1].raw)),
                         ("latin-1", io.BufferedWriter, io.FileIO))

    def test_a_writer_goes_on_writing_into_the_restored_buffer_with_its_dialect(self):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        d = csv.DictWriter(buf, ["a", "b"], extrasaction="ignore")
        w.writerow(["x", 1])
        _, (buf2, w2, d2) = checkpoint(self.mod, [buf, w, d])
        for writer, out in ((w, buf), (w2, buf2)):
            writer.writerow(["y", 2.5])
            out.write("|")
        d2.writerow({"a": 1, "b": "q,r", "c": 3})
        self.assertEqual(buf2.getvalue(), buf.getvalue() + '1,"q,r"\r\n')
        self.assertEqual(buf2.getvalue()[:15], '"x";1\n"y";2.5\n|')

    def test_a_reader_left_in_the_middle_of_a_record_is_refused(self):
        lines = iter(['a,"unfinished'])
        r = csv.reader(lines, strict=True)
        with self.assertRaises(csv.Error):
            next(r)
        with self.assertRaisesRegex(Exception, "middle of a record"):
            checkpoint(self.mod, [r])

    def test_a_writer_into_a_file_open_for_writing_is_refused_with_its_file(self):
        with open(os.path.join(self.dir.name, "out.csv"), "w", newline="") as f:
            with self.assertRaisesRegex(TypeError, "only regular files open for reading"):
                checkpoint(self.mod, [csv.writer(f)])


class Layout(unittest.TestCase):
    def test_a_file_whose_fields_do_not_match_is_refused(self):
        f = io.TextIOWrapper(io.BytesIO(b"a\nb\n"))  # no raw FileIO where textio.c caches one
        next(f)
        with self.assertRaises(FileStateError):
            text_newline(f)


if __name__ == "__main__":
    unittest.main()
