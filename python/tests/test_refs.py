"""Weak references and library extension types (``microlambda_rt.refs``) through the job-state pickler: each
comes back referring to the restored objects, dead where it was dead or where only it held its referent, and
extension types equal in every field they expose."""

import contextvars
import gc
import importlib.util
import io
import pickle
import sys
import unittest
import weakref

from microlambda_rt.pickler import _Capture, _Pickler
from microlambda_rt.refs import settle_context_vars
from microlambda_rt.state import _Job

from .test_pickler import JobTest, checkpoint


class Thing:
    def __init__(self, n):
        self.n = n

    def get(self):
        return self.n


HAS_PANDAS = importlib.util.find_spec("pandas") is not None


class WeakRefs(JobTest):
    def test_a_reference_to_an_object_in_the_state_refers_to_the_restored_object(self):
        t = Thing(3)
        _, (t2, r2) = checkpoint(self.mod, (t, weakref.ref(t)))
        self.assertIsNot(t2, t)
        self.assertIs(r2(), t2)
        del t2
        gc.collect()
        self.assertIsNone(r2())  # the restored reference is weak: it dies with its referent

    def test_a_referent_only_the_reference_held_is_dead_after_restore(self):
        t = Thing(4)
        _, (r2,) = checkpoint(self.mod, (weakref.ref(t),))
        gc.collect()
        self.assertIsNone(r2())

    def test_a_dead_reference_comes_back_dead(self):
        t = Thing(5)
        r = weakref.ref(t)
        del t
        gc.collect()
        _, (r2,) = checkpoint(self.mod, (r,))
        self.assertIsInstance(r2, weakref.ref)
        self.assertIsNone(r2())

    def test_the_callback_is_kept(self):
        seen = []
        t = Thing(6)
        r = weakref.ref(t, seen.append)
        _, (t2, r2, seen2) = checkpoint(self.mod, (t, r, seen))
        self.assertIsNotNone(r2.__callback__)
        del t2
        gc.collect()
        self.assertEqual(seen2, [r2])

    def test_a_weak_value_dictionary_still_forgets_values_that_die(self):
        a, b = Thing(1), Thing(2)
        d = weakref.WeakValueDictionary({"a": a, "b": b})
        _, (a2, d2) = checkpoint(self.mod, (a, d))
        gc.collect()
        self.assertEqual(list(d2.keys()), ["a"])  # b was held only by the dictionary
        self.assertIs(d2["a"], a2)
        del a2
        gc.collect()
        self.assertEqual(len(d2), 0)

    def test_a_weak_method_refers_to_the_restored_instance(self):
        t = Thing(7)
        calls = []
        m = weakref.WeakMethod(t.get, calls.append)
        _, (t2, m2, calls2) = checkpoint(self.mod, (t, m, calls))
        self.assertEqual(m2()(), 7)
        self.assertIs(m2().__self__, t2)
        del t2
        gc.collect()
        self.assertIsNone(m2())
        self.assertEqual(calls2, [m2])


@unittest.skipUnless(HAS_PANDAS, "pandas not installed (make setup-libs)")
class PandasInternals(JobTest):
    def test_block_placements_come_back_equal(self):
        import numpy as np
        from pandas._libs.internals import BlockPlacement

        for p in (BlockPlacement(slice(0, 6, 2)), BlockPlacement(np.array([4, 1, 7]))):
            _, (q,) = checkpoint(self.mod, (p,))
            self.assertEqual(type(q), type(p))
            self.assertEqual(str(q), str(p))
            self.assertEqual(list(q.as_array), list(p.as_array))
            self.assertEqual(q.is_slice_like, p.is_slice_like)

    def test_block_values_refs_keep_the_blocks_that_share_an_array(self):
        import pandas as pd

        df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
        view = df[:]  # shares the block's array: copy-on-write counts the reference
        refs = df._mgr.blocks[0].refs
        self.assertTrue(refs.has_reference())
        _, (df2, view2, refs2) = checkpoint(self.mod, (df, view, refs))
        self.assertEqual(refs2.clear_counter, refs.clear_counter)
        self.assertEqual(len(refs2.referenced_blocks), len(refs.referenced_blocks))
        self.assertTrue(refs2.has_reference())
        self.assertIs(df2._mgr.blocks[0].refs, refs2)
        view2.iloc[0, 0] = 99.0  # copy-on-write: the original frame is untouched, as before the checkpoint
        self.assertEqual(df2.iloc[0, 0], 1.0)

    def test_dead_references_to_blocks_are_left_out(self):
        import pandas as pd

        df = pd.DataFrame({"a": [1.0, 2.0]})
        views = [df[:] for _ in range(5)]
        refs = df._mgr.blocks[0].refs
        del views
        alive = [r for r in refs.referenced_blocks if r() is not None]
        self.assertGreater(len(refs.referenced_blocks), len(alive))  # pandas clears them only now and then
        _, (df2, refs2) = checkpoint(self.mod, (df, refs))
        self.assertEqual(len(refs2.referenced_blocks), len(alive))
        self.assertFalse(refs2.has_reference())
        self.assertIs(refs2.referenced_blocks[0](), df2._mgr.blocks[0])

    def test_a_series_taken_from_a_frame_still_copies_on_write(self):
        import pandas as pd

        df = pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"]})
        s = df["a"]
        _, (df2, s2) = checkpoint(self.mod, (df, s))
        s2.iloc[1] = 55.0
        df2["d"] = 1
        self.assertEqual(list(df2["a"]), [1.0, 2.0])
        self.assertEqual(list(s2), [1.0, 55.0])
        self.assertEqual(df2.sum(numeric_only=True).to_dict(), {"a": 3.0, "d": 2})


if __name__ == "__main__":
    unittest.main()


VAR = contextvars.ContextVar("ml_test_var")


class CachedHelpers(JobTest):
    """Objects that cache a C helper they can make again: saved without it, working after the restore."""

    def test_a_struct_a_json_decoder_and_a_vectorize_come_back_working(self):
        import json
        import struct

        rec = struct.Struct("<Ih")
        dec = json.JSONDecoder(parse_int=lambda s: int(s) * 2)
        roots = [rec, dec]
        try:
            import numpy as np
        except ImportError:
            np = None
        if np is not None:
            vec = np.vectorize(lambda x: x + 1, otypes=[float])
            vec(np.arange(3))  # caches its ufunc, which cannot be pickled
            roots.append(vec)
        _, back = checkpoint(self.mod, roots)
        self.assertEqual(back[0].unpack(rec.pack(7, -2)), (7, -2))
        self.assertEqual(back[1].decode('{"a": [1, 2.5]}'), {"a": [2, 2.5]})
        if np is not None:
            self.assertEqual(back[2](np.arange(3)).tolist(), [1.0, 2.0, 3.0])

    def test_a_struct_iter_unpack_iterator_comes_back_at_the_same_record(self):
        import struct

        rec = struct.Struct("<iH")
        data = bytearray()
        for i in range(5):
            data += rec.pack(i, i * 3)
        it, done, empty = rec.iter_unpack(data), struct.iter_unpack("<h", b"\x01\x00"), rec.iter_unpack(b"")
        next(it), next(it), list(done)
        _, back = checkpoint(self.mod, [it, data, done, empty])
        self.assertEqual(back[0].__length_hint__(), 3)
        with self.assertRaises(BufferError):  # it reads the restored bytearray, which it holds exported
            back[1].clear()
        back[1][rec.size * 2] = 9  # and sees a write to it
        self.assertEqual(list(back[0]), [(9, 6), (3, 9), (4, 12)])
        self.assertEqual((list(back[2]), list(back[3]), type(back[2]).__name__), ([], [], "unpack_iterator"))

    @unittest.skipUnless(importlib.util.find_spec("numpy"), "numpy is not installed")
    def test_a_ufunc_made_from_a_python_function_comes_back_calling_the_restored_function(self):
        import numpy as np

        seen = []

        def add(a, b):
            seen.append(a)
            return a + b

        plain, with_identity, two_out = np.frompyfunc(add, 2, 1), np.frompyfunc(add, 2, 1, identity=0), \
            np.frompyfunc(divmod, 2, 2)
        _, back = checkpoint(self.mod, [plain, with_identity, two_out, np.add, seen])
        self.assertEqual(back[0](np.arange(3), 1).tolist(), [1, 2, 3])
        self.assertEqual(back[4], [0, 1, 2])  # the restored function, which appends to the restored list
        self.assertEqual((back[1].identity, back[1].reduce(np.array([], dtype=object))), (0, 0))
        with self.assertRaises(ValueError):  # no identity given: as before
            back[0].reduce(np.array([], dtype=object))
        self.assertEqual([a.tolist() for a in back[2](np.array([7, 9]), 4)], [[1, 2], [3, 1]])
        self.assertEqual((back[0].__name__, back[2].types), ("add (vectorized)", ["OO->OO"]))
        self.assertIs(back[3], np.add)

    def test_a_json_decoder_stopped_in_its_own_init_comes_back_as_it_was(self):
        import json

        dec = json.JSONDecoder.__new__(json.JSONDecoder)
        dec.object_hook = None  # __init__ stopped before `strict` and the scanner were set
        _, back = checkpoint(self.mod, [dec])
        self.assertEqual(vars(back[0]), {"object_hook": None})
        json.JSONDecoder.__init__(back[0], strict=False)  # the resumed __init__ makes its scanner
        self.assertEqual(back[0].decode('{"a": "x\ty"}'), {"a": "x\ty"})


class Patterns(JobTest):
    def test_a_pattern_compiled_without_a_source_comes_back_with_the_same_code(self):
        import re

        sc = re.Scanner([(r"\d+", None), (r"(?P<w>[a-z]+)", None), (r"\s+", None)], re.I)
        self.assertIsNone(sc.scanner.pattern)  # re's own pickling would make it again from None: an error
        plain = re.compile(r"(?P<k>\w+)=(\d+)")
        _, back = checkpoint(self.mod, [sc.scanner, plain])
        m = back[0].scanner("AB 12").match()
        self.assertEqual((m.lastindex, m.group()), (2, "AB"))
        self.assertEqual((back[0].groups, dict(back[0].groupindex), back[0].flags),
                         (sc.scanner.groups, dict(sc.scanner.groupindex), sc.scanner.flags))
        self.assertEqual(back[1], plain)  # a pattern with its source: compiled again from it, as re pickles it
        self.assertEqual(back[1].match("a=1").group("k"), "a")


class Wrapping:
    """An array-like with its own __array_wrap__ (as a pandas Series has): a converter shows only its array."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        import numpy as np

        return np.asarray(self.values, dtype=dtype)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return Wrapping(arr)


class ArrayConverters(JobTest):
    """numpy's `_array_converter`, held by `apply_along_axis` while it calls back: made again from what it shows
    when that gives the same converter, refused otherwise."""

    def setUp(self):
        super().setUp()
        try:
            import numpy as np
            from numpy._core._multiarray_umath import _array_converter
        except ImportError:
            self.skipTest("numpy 2 is not installed")
        self.np, self.conv = np, _array_converter

    def test_arrays_lists_and_python_scalars_come_back_the_same(self):
        np = self.np
        arr = np.arange(4, dtype=np.float32)
        c = self.conv(arr, [1, 2, 3], 2.5)
        weak = self.conv(arr, 2.5)
        _, back = checkpoint(self.mod, [c, arr, weak])
        b, arr2, weak2 = back
        self.assertIs(b[0], arr2)  # the job's array is the converter's, as before
        self.assertEqual(b[1].tolist(), [1, 2, 3])
        self.assertEqual(b[2], 2.5)
        self.assertEqual((b.scalar_input, b.result_type()), (c.scalar_input, c.result_type()))
        self.assertEqual(weak2.result_type(), np.float32)  # the Python float stays weak
        self.assertEqual(type(b.wrap(arr2, to_scalar=False)), np.ndarray)

    def test_an_argument_with_its_own_wrap_is_refused(self):
        c = self.conv(Wrapping([1.0, 2.0]))
        with self.assertRaises(Exception) as e:
            checkpoint(self.mod, [c])
        self.assertIn("_array_converter", str(e.exception))


class FileHandlers(JobTest):
    """A logging FileHandler: saved flushed and without its stream, opening its file again, appending."""

    def test_a_file_handler_goes_on_appending_to_its_file(self):
        import logging
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/job.log"
            h = logging.FileHandler(path, mode="w")
            h.setFormatter(logging.Formatter("%(message)s"))
            rec = logging.LogRecord("job", logging.INFO, __file__, 1, "line %d", (1,), None)
            h.emit(rec)
            _, (back,) = checkpoint(self.mod, [h])
            self.assertIsNone(back.stream)
            self.assertEqual((back.mode, back.baseFilename), ("a", h.baseFilename))
            rec.args = (2,)
            back.emit(rec)
            back.close()
            h.close()
            with open(path) as f:
                self.assertEqual(f.read(), "line 1\nline 2\n")


class ThreadpoolLimits(JobTest):
    """threadpoolctl's controller and a limiter in its `with` block (KMeans runs inside one): made again over the
    same libraries, the limits set again, the counts to put back on exit kept."""

    def test_a_limiter_comes_back_limiting_and_puts_back_the_original_counts(self):
        try:
            import numpy  # noqa: F401 - loads a BLAS for the controller to find
            import threadpoolctl
        except ImportError:
            self.skipTest("threadpoolctl is not installed")
        controller = threadpoolctl.ThreadpoolController()
        blas = controller.select(user_api="blas")
        if not blas.lib_controllers:
            self.skipTest("no BLAS library loaded")
        before = [i["num_threads"] for i in blas.info()]
        lim = blas.limit(limits=1, user_api="blas")
        try:
            with lim:
                entered = threadpoolctl.CONTROLLING_THREAD_OWNERSHIP.count
                _, back = checkpoint(self.mod, [lim, blas])
                lim2, blas2 = back
                self.assertIs(lim2._controller, blas2)
                self.assertEqual([lc.filepath for lc in blas2.lib_controllers],
                                 [lc.filepath for lc in blas.lib_controllers])
                self.assertEqual(lim2._original_info, lim._original_info)
                self.assertEqual(lim2._limits, lim._limits)
                self.assertEqual(threadpoolctl.CONTROLLING_THREAD_OWNERSHIP.count, entered)
                self.assertEqual({i["num_threads"] for i in blas2.info()}, {1})
                lim2.restore_original_limits()  # what the restored block's exit does
                self.assertEqual([i["num_threads"] for i in blas2.info()], before)
        finally:
            blas.limit(limits=dict(zip([lc.filepath for lc in blas.lib_controllers], before)))


class Sub(dict):
    def __init__(self, n):
        super().__init__(n=n)

    def update(self, *a):
        raise AssertionError("the subclass's override ran")


class Seq(list):
    def append(self, x):
        raise AssertionError("the subclass's override ran")


class SuperBound(JobTest):
    """A C slot or method bound to an instance through super(): the base's, not the subclass's override."""

    def test_a_slot_and_a_method_bound_through_super_come_back_as_the_bases(self):
        d = Sub.__new__(Sub)
        s = Seq()
        roots = [d, super(Sub, d).__init__, super(Sub, d).update, s, super(Seq, s).append, s.__len__]
        _, back = checkpoint(self.mod, roots)
        back[1](n=3)
        back[2](m=4)
        back[4](5)
        self.assertIs(back[1].__self__, back[0])
        self.assertEqual(dict(back[0]), {"n": 3, "m": 4})
        self.assertEqual(list(back[3]), [5])
        self.assertEqual(back[5](), 1)


class ContextTokens(JobTest):
    """Tokens of a context variable made again in the restoring context: unused ones reset the variable as the
    originals would, used ones refuse, every old value as it was, the variable as it was at the checkpoint;
    whatever order the pickle meets them in."""

    def setUp(self):
        super().setUp()
        self.used = []
        sys.modules["_mlrs"].token_used = lambda t: any(t is u for u in self.used)

    def tearDown(self):
        del sys.modules["_mlrs"].token_used
        super().tearDown()

    def made(self):
        spent = VAR.set(1)
        VAR.reset(spent)
        self.used.append(spent)
        outer = VAR.set(2)
        inner = VAR.set(3)
        return spent, outer, inner

    def dump(self, root):
        cap = _Capture(_Job(self.mod), {})
        buf = io.BytesIO()
        _Pickler(buf, cap).dump(root)
        return buf.getvalue(), cap.buffers

    def load(self, data, buffers):
        try:
            return pickle.loads(data, buffers=buffers)
        finally:
            settle_context_vars()

    def test_tokens_come_back_working_in_either_order(self):
        for reverse in (False, True):
            with self.subTest(reverse=reverse):
                made = contextvars.Context()
                tokens = made.run(self.made)
                data = made.run(self.dump, tokens[::-1] if reverse else tokens)
                restored = contextvars.Context()
                back = restored.run(self.load, *data)
                restored.run(self.works, *(back[::-1] if reverse else back))

    def works(self, spent, outer, inner):
        self.assertEqual(VAR.get(), 3)  # as at the checkpoint
        self.assertEqual(inner.old_value, 2)
        self.assertIs(outer.old_value, contextvars.Token.MISSING)
        self.assertIs(spent.old_value, contextvars.Token.MISSING)
        VAR.reset(inner)
        self.assertEqual(VAR.get(), 2)
        VAR.reset(outer)
        self.assertIsNone(VAR.get(None))
        with self.assertRaises(RuntimeError):  # used before the checkpoint
            VAR.reset(spent)

    def test_a_token_that_could_not_be_made_again_is_refused(self):
        # Unused, made when VAR had no value, saved where VAR has none: a token made again that way would leave
        # VAR with a value. (Within one context this needs a token of another context; it is refused anyway.)
        lone = contextvars.Context().run(VAR.set, 1)
        with self.assertRaisesRegex(TypeError, "ml_test_var"):
            contextvars.Context().run(self.dump, (lone,))


class DecimalManagers(JobTest):
    def test_a_localcontext_the_job_is_inside_comes_back_restoring_the_outer_context(self):
        import decimal

        outer = decimal.Context(prec=9)
        decimal.setcontext(outer)
        mgr = decimal.localcontext()
        ctx = mgr.__enter__()
        ctx.prec = 5
        try:
            _, back = checkpoint(self.mod, [mgr.__exit__, outer, ctx])
        finally:
            mgr.__exit__(None, None, None)
        exit_, outer2, ctx2 = back
        decimal.setcontext(ctx2)  # the resumed block's own context, current on restore
        self.assertEqual(decimal.getcontext().prec, 5)
        _, again = checkpoint(self.mod, [exit_.__self__])  # entered again: it can be saved again
        exit_(None, None, None)
        self.assertIs(decimal.getcontext(), outer2)
        self.assertEqual(decimal.getcontext().prec, 9)
        with self.assertRaises(Exception):  # a manager not entered is still refused
            checkpoint(self.mod, [decimal.localcontext()])
        decimal.setcontext(decimal.DefaultContext)


@unittest.skipIf(importlib.util.find_spec("PIL") is None, "Pillow not installed")
class PillowDrawing(JobTest):
    def test_a_drawing_context_comes_back_drawing_on_the_restored_image(self):
        from PIL import Image, ImageDraw

        for mode, draw_mode in (("RGB", None), ("RGB", "RGBA"), ("L", None), ("P", None)):
            im = Image.new(mode, (40, 30), 0)
            d = ImageDraw.Draw(im, draw_mode)
            d.rectangle([2, 2, 20, 12], outline=(200, 10, 10, 128) if draw_mode else 7, width=2)
            _, (bim, bd) = checkpoint(self.mod, (im, d))
            self.assertIs(bd.im, bim.im, "the context draws on the restored image's pixel store")
            self.assertEqual(list(vars(bd)), list(vars(d)))
            for x, dd in ((im, d), (bim, bd)):
                dd.ellipse([5, 5, 30, 25], fill=(10, 200, 30, 100) if draw_mode else 3)
                dd.line([(0, 29), (39, 0)], fill=(0, 0, 250, 60) if draw_mode else 9, width=3)
            self.assertEqual(bim.tobytes(), im.tobytes(), (mode, draw_mode))
