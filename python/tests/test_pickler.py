"""The job-state pickler (``microlambda_rt.pickler``) on objects whose own pickling drops live state: lru_cache
wrappers (cache and counters kept in C), dict subclasses saved without their own reducer, objects in the middle
of their own methods. Each must come back as it was, or be refused (never a silent difference)."""

import io
import json
import pickle
import sys
import tempfile
import types
import unittest

from microlambda_rt import pickler
from microlambda_rt.base import NotResumable, RestoreError
from microlambda_rt.pickler import _c_state_reducer, _Capture, _Pickler, _refuse_raw_addresses, _static_path
from microlambda_rt.state import _Job

from .helpers import fake_module

JOB_SOURCE = """
import functools

CALLS = []

@functools.lru_cache(maxsize=None)
def fib(n):
    CALLS.append(n)
    return n if n < 2 else fib(n - 1) + fib(n - 2)

@functools.lru_cache(maxsize=3)
def box(n):
    CALLS.append(n)
    return [n]

@functools.lru_cache(typed=True)
def kw(a, b=1, *, c=2):
    return (a, b, c)

def make_square():
    @functools.lru_cache(maxsize=2)
    def square(x):
        CALLS.append(x)
        return x * x
    return square

class Shop:
    @functools.lru_cache(maxsize=None)
    def price(self, item):
        return len(item)

    def stock(self, item, seen=[]):
        seen.append(item)
        return len(seen)

_MISSING = object()

def get(x=_MISSING):
    return x is _MISSING

def add(x, seen=[]):
    seen.append(x)
    return len(seen)

def counted():
    counted.calls += 1
    return counted.calls

counted.calls = 0

@functools.singledispatch
def show(x, width=8):
    return str(x)
"""


def checkpoint(mod, root, busy=(), cells=None):
    """Pickle `root` as a checkpoint of job module `mod` does (`cells`: the job functions' closure cells by
    identity, as a capture indexes them); then load the module again (as a restoring worker does) and unpickle
    into it."""
    cap = _Capture(_Job(mod), {})
    for o in busy:
        cap.busy[id(o)] = o
    cap.job_cells = cells or {}
    buf = io.BytesIO()
    _Pickler(buf, cap).dump(root)
    fresh = fake_module(mod.__name__, JOB_SOURCE)
    return fresh, pickle.loads(buf.getvalue(), buffers=cap.buffers)


class JobTest(unittest.TestCase):
    """A test with the job module loaded."""

    def setUp(self):
        self.mod = fake_module("lru_job", JOB_SOURCE)

    def tearDown(self):
        sys.modules.pop("lru_job", None)


class RawAddresses(JobTest):
    @unittest.skipIf("numpy" not in sys.modules and __import__("importlib").util.find_spec("numpy") is None,
                     "numpy not installed")
    def test_an_array_interface_with_a_raw_address_is_waited_out(self):
        import numpy as np

        from numpy.lib._stride_tricks_impl import DummyArray

        a = np.arange(6.0)
        interface = dict(a.__array_interface__)  # what numpy's as_strided holds while it builds its view
        for frame_values in ([1, interface], [DummyArray(interface, base=a)]):
            with self.assertRaises(NotResumable):
                _refuse_raw_addresses(frame_values)
        _refuse_raw_addresses([{"data": b"x", "typestr": "<f8", "version": 3}, a])  # no address: saved as is


class StaticPaths(unittest.TestCase):
    """The loading half of what a static global reaches (src/py/statics.rs writes the paths; the corpus's
    93_static_parts.py checks them end to end): followed in the restoring module, or refused by name."""

    def setUp(self):
        self.mod = fake_module("static_job", "class M:\n    def __init__(self):\n        self.rows = [{(1, 2): 'e'}]\n"
                               "G = {7: (M(), [3])}\n")

    def tearDown(self):
        sys.modules.pop("static_job", None)

    def test_a_path_reaches_the_restoring_modules_own_object(self):
        g = self.mod.G
        self.assertIs(_static_path("static_job", "G", b"", ()), g)
        self.assertIs(_static_path("static_job", "G", b"mii", (7, 1, 0)), g[7][1][0])
        self.assertIs(_static_path("static_job", "G", b"midim", (7, 0, "rows", 0, (1, 2))), g[7][0].rows[0][(1, 2)])

    def test_a_path_that_leads_nowhere_here_is_refused_by_name(self):
        for kinds, keys in ((b"m", (8,)), (b"mii", (7, 1, 5)), (b"md", (7, "rows")), (b"midi", (7, 0, "gone", 0)),
                            (b"mm", (7, 0))):
            with self.assertRaisesRegex(RestoreError, r"static_job\.G.*part of a static global"):
                _static_path("static_job", "G", kinds, keys)
        with self.assertRaises(RestoreError):
            _static_path("static_job", "NOT_BOUND", b"", ())


class InputPaths(unittest.TestCase):
    """The loading half of the job's input saved by reference (src/py/statics.rs `index_input`; the corpus's
    94_input_parts.py checks it end to end): decoded again from the restore's input, once, or refused when the
    restore has no input or another one."""

    INPUT = '{"rows": [{"id": 1, "tags": [2]}, {"id": 3}], "n": 4}'

    def tearDown(self):
        pickler.restore_input_done()
        pickler.unbind_input()

    def test_the_input_is_decoded_once_and_its_parts_are_reached_by_their_paths(self):
        name = pickler._name_of_input(self.INPUT)
        pickler.expect_input(self.INPUT)
        rows = _static_path(pickler.__name__, name, b"m", ("rows",))
        self.assertEqual(rows, [{"id": 1, "tags": [2]}, {"id": 3}])
        self.assertIs(_static_path(pickler.__name__, name, b"mim", ("rows", 0, "tags")), rows[0]["tags"])
        self.assertIs(_static_path(pickler.__name__, name, b"", ())["rows"], rows)

    def test_a_restore_without_the_input_or_with_another_is_refused(self):
        name = pickler._name_of_input(self.INPUT)
        with self.assertRaisesRegex(RestoreError, "not given the input"):
            _static_path(pickler.__name__, name, b"m", ("rows",))
        pickler.expect_input('{"rows": [], "n": 4}')
        with self.assertRaisesRegex(RestoreError, "another input"):
            _static_path(pickler.__name__, name, b"m", ("rows",))

    def test_a_restore_never_follows_a_path_into_an_input_bound_before(self):
        # A worker that served a job with the same input text, which changed its input in place.
        pickler.bind_input(json.loads(self.INPUT), self.INPUT)
        getattr(pickler, pickler._name_of_input(self.INPUT))["rows"].append("changed by the job before")
        pickler.expect_input(self.INPUT)
        rows = _static_path(pickler.__name__, pickler._name_of_input(self.INPUT), b"m", ("rows",))
        self.assertEqual(rows, [{"id": 1, "tags": [2]}, {"id": 3}])


class ClassesOfUnloadedModules(JobTest):
    """A library class whose `__module__` names a module not loaded (numpy's `recarray` says `numpy.rec`, which
    numpy imports only on first use of `np.rec`) is saved by reference to the loaded module of its package
    that binds it, not made again by value as a new class of the same name."""

    def test_a_class_bound_elsewhere_in_its_package_comes_back_as_itself(self):
        pkg = types.ModuleType("unloaded_pkg")

        class Rec(list):
            def first(self):
                return super().__getitem__(0)

        Rec.__module__, Rec.__qualname__ = "unloaded_pkg.rec", "Rec"
        pkg.Rec = Rec
        from cloudpickle import cloudpickle as cp

        sys.modules["unloaded_pkg"] = pkg
        try:
            cap = _Capture(_Job(self.mod), {})
            buf = io.BytesIO()
            _Pickler(buf, cap).dump((Rec, Rec([4, 5])))
            tracked = dict(cp._DYNAMIC_CLASS_TRACKER_BY_ID)
            cp._DYNAMIC_CLASS_TRACKER_BY_ID.clear()  # a restoring process does not know the class by its pickling id
            try:
                cls, r = pickle.loads(buf.getvalue(), buffers=cap.buffers)
            finally:
                cp._DYNAMIC_CLASS_TRACKER_BY_ID.update(tracked)
            self.assertIs(cls, Rec)
            self.assertIs(type(r), Rec)
            self.assertEqual(r.first(), 4)  # super() checks the instance against the class's own cell
        finally:
            del sys.modules["unloaded_pkg"]


class StaticTypes(JobTest):
    """A C type its module does not export under its name is saved by reference (found again among the
    process's classes), never made again by value: a C type's methods cannot be put in a new class."""

    def test_a_c_type_not_exported_by_name_and_its_method_come_back_as_themselves(self):
        t = type(iter(range(3)))  # `range_iterator`, of module "builtins", which has no such name
        _, (t2, d) = checkpoint(self.mod, (t, t.__dict__["__length_hint__"]))
        self.assertIs(t2, t)
        self.assertIs(d, t.__dict__["__length_hint__"])

    @unittest.skipIf(__import__("importlib").util.find_spec("PIL") is None, "Pillow not installed")
    def test_pillows_imaging_core_type_and_its_method_come_back_as_themselves(self):
        from PIL import Image

        t = type(Image.new("RGB", (2, 2)).im)  # `ImagingCore`, whose module says it is "builtins"
        _, (t2, d) = checkpoint(self.mod, (t, t.__dict__["histogram"]))
        self.assertIs(t2, t)
        self.assertIs(d, t.__dict__["histogram"])

    def test_a_c_modules_heap_type_named_like_a_function_of_its_module_comes_back_as_itself(self):
        import csv

        t = type(csv.writer(io.StringIO()))  # `_csv.writer`, made from a spec; `_csv.writer` is a function
        _, (t2, d, m) = checkpoint(self.mod, (t, t.__dict__["writerow"], t.__dict__["dialect"]))
        self.assertIs(t2, t)  # made again by value, it lacked its methods: the restore failed (KeyError)
        self.assertIs(d, t.__dict__["writerow"])
        self.assertIs(m, t.__dict__["dialect"])

    def test_a_class_a_c_metaclass_made_at_run_time_is_refused_not_made_again_by_value(self):
        import ctypes

        def made():
            class Pair(ctypes.Structure):  # as threadpoolctl defines one inside a function
                _fields_ = [("a", ctypes.c_int), ("b", ctypes.c_double)]

            return Pair, ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)

        for t in made():
            with self.assertRaises(TypeError) as e:
                checkpoint(self.mod, t)
            self.assertIn("C metaclass", str(e.exception))
        _, t = checkpoint(self.mod, ctypes.c_int)  # an importable ctypes type: by reference
        self.assertIs(t, ctypes.c_int)


    def test_a_warm_process_finds_a_c_type_by_name_without_walking_the_classes_again(self):
        from microlambda_rt import pickler

        pickler.index_static_types()  # what `warm()` does in a zygote before it forks
        walks = []
        real = pickler.index_static_types
        pickler.index_static_types = lambda: (walks.append(1), real())[1]
        try:
            self.assertIs(pickler._static_type_by_name("builtins", "range_iterator"), type(iter(range(3))))
            self.assertEqual(walks, [])
            self.assertIsNone(pickler._static_type_by_name("builtins", "no_such_type"))  # a miss walks again
            self.assertEqual(walks, [1])
        finally:
            pickler.index_static_types = real


class LruCaches(JobTest):
    def test_an_unbounded_cache_comes_back_with_its_entries_and_counters(self):
        m = self.mod
        m.fib(30)
        m.fib(25)
        before = m.fib.cache_info()
        fresh, (fib,) = checkpoint(m, (m.fib,))
        self.assertIs(fib, fresh.fib)
        self.assertEqual(fib.cache_info(), before)
        self.assertEqual(fresh.CALLS, [])  # refilled without running the job's function
        self.assertEqual(fib(30), 832040)
        self.assertEqual(fresh.CALLS, [])
        self.assertEqual(fib.cache_info().hits, before.hits + 1)

    def test_a_bounded_cache_keeps_its_order_and_the_identity_of_its_results(self):
        m = self.mod
        for n in (1, 2, 3, 1, 4):  # 2 evicted; least recently used first: 3, 1, 4
            m.box(n)
        held = m.box(4)
        fresh, (box, got) = checkpoint(m, (m.box, held))
        self.assertEqual(box.cache_info(), m.box.cache_info())
        self.assertIs(box(4), got)
        box(5)  # evicts 3, the least recently used
        self.assertEqual(fresh.CALLS, [5])
        box(1)
        box(3)
        self.assertEqual(fresh.CALLS, [5, 3])

    def test_typed_keys_with_keywords_are_called_again_as_they_were(self):
        m = self.mod
        m.kw(1, c=3)
        m.kw(1.0, b=2)
        m.kw(1, c=3)
        fresh, (kw,) = checkpoint(m, (m.kw,))
        self.assertEqual(kw.cache_info(), m.kw.cache_info())
        self.assertEqual(kw.cache_info().currsize, 2)

    def test_a_methods_cache_is_the_classs_data(self):
        m = self.mod
        shop = m.Shop()
        shop.price("apple")
        shop.price("apple")
        fresh, (price,) = checkpoint(m, (vars(m.Shop)["price"],))
        self.assertIs(price, vars(fresh.Shop)["price"])
        self.assertEqual(price.cache_info()[:2], (1, 1))

    def test_a_local_cache_is_saved_by_value_with_its_entries(self):
        sq = self.mod.make_square()
        sq(3)
        sq(4)
        sq(3)
        fresh, (got,) = checkpoint(self.mod, (sq,))
        self.assertEqual(got.cache_info(), sq.cache_info())
        self.assertEqual(got(4), 16)
        self.assertEqual(got.__wrapped__.__globals__["CALLS"], [])

    def test_an_empty_cache_is_saved_by_reference_alone(self):
        fresh, (fib,) = checkpoint(self.mod, (self.mod.fib,))
        self.assertIs(fib, fresh.fib)
        self.assertEqual(fib.cache_info().misses, 0)


class FunctionState(JobTest):
    """The job module's functions are made again by loading it: what they hold comes back from the checkpoint."""

    def test_defaults_and_attributes_come_back_with_the_globals_they_share(self):
        from microlambda_rt.capture import _function_state, _job_cells, _job_functions
        from microlambda_rt.restore import _set_function_state

        m = self.mod
        m.add(1), m.add(2), m.counted(), m.counted(), m.Shop().stock("x")
        m.show.register(int, m.get)  # singledispatch's registry lives in a closure, filled at run time
        job = _Job(m)
        saved = _function_state(job)
        self.assertEqual(set(saved), {"add", "get", "counted", "Shop.stock", "show"})
        fresh, (g, fs) = checkpoint(m, ({"_MISSING": m._MISSING}, saved), cells=_job_cells(job, _job_functions(job)))
        fresh.__dict__.update(g)  # as restore puts the module's globals back
        _set_function_state(fresh, fs)
        self.assertIs(fresh.show(5), False, "the registration made at run time")
        self.assertEqual(fresh.show("x"), "x")
        self.assertEqual(fresh.add(3), 3)
        self.assertEqual(fresh.counted(), 3)
        self.assertTrue(fresh.get())  # the default is the sentinel the globals hold
        self.assertEqual(fresh.Shop().stock("y"), 2)


class Result(dict):
    """A dict answering attributes (scipy's OptimizeResult)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


class Half:
    """A slotted object whose own pickling reads a slot its __init__ has not set yet (networkx's AtlasView)."""

    __slots__ = ("_atlas", "_n")

    def __init__(self, d):
        self._n = len(d)
        self._atlas = d

    def __getstate__(self):
        return {"_atlas": self._atlas, "_n": self._n}

    def __setstate__(self, state):
        self._atlas, self._n = state["_atlas"], state["_n"]


class Coords:
    """A class that only sets its state its own way, from a complete state (scipy's coo_matrix)."""

    def __init__(self, row, col):
        self.shape = (len(row), len(col))
        self.coords = (row, col)

    def __setstate__(self, state):
        state["coords"] = state.get("coords") or (state.pop("row"), state.pop("col"))
        self.__dict__.update(state)


class Ranged:
    """A class whose own pickling reads an attribute a half-built instance lacks (pandas' Index)."""

    def __init__(self, data, name):
        self._data, self.name = data, name

    def __reduce__(self):
        return _rebuild_ranged, (self._data, self.name)


def _rebuild_ranged(data, name):
    r = Ranged(data, name)
    r.rebuilt = True
    return r


class Refuses:
    """A class that refuses to be pickled (as a wrapper of a connection would)."""

    def __reduce__(self):
        raise TypeError("cannot pickle a Refuses")


class Picture:
    """A class whose own pickling keeps what it needs at rest, not what its methods set while they run (PIL's
    Image.save() sets `encoderinfo`)."""

    def __init__(self):
        self.pixels = [1, 2]

    def save(self):
        self.encoderinfo = {"optimize": True}

    def __getstate__(self):
        return [self.pixels]

    def __setstate__(self, state):
        self.pixels = state[0]


class Label:
    """A class whose own pickling blanks what a method in progress relies on (matplotlib's Text.__getstate__
    sets `_renderer` to None)."""

    def __init__(self):
        self.text, self._renderer = "x", None

    def draw(self, renderer):
        self._renderer = renderer

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_renderer"] = None
        return d


class Tagged:
    """Own pickling that drops a cache and adds a version key (matplotlib's Figure adds `__mpl_version__`)."""

    def __init__(self):
        self.a, self._cache, self.z = 1, {"k": 2}, 3

    def __getstate__(self):
        d = self.__dict__.copy()
        del d["_cache"]
        d["_version"] = 2
        return d


class Scale:
    def __init__(self, k):
        self.k = k


class Drawing:
    """A figure's shape: its own pickling saves the resolution it was made with and its __setstate__ rescales
    the transform it holds to it, in place; a method in progress (a save) raised the resolution for a while,
    and its pickling also pops a key it added."""

    def __init__(self):
        self.dpi, self.original, self.scale = 50, 50, Scale(50)

    def save(self):
        self.dpi = 72
        self.scale.k = 72

    def __getstate__(self):
        return {**self.__dict__, "dpi": self.original, "_v": 1}

    def __setstate__(self, state):
        state.pop("_v")
        self.__dict__ = state
        self.scale.k = self.dpi


class Derives:
    """A __setstate__ that derives an attribute its __init__ sets last."""

    def __init__(self, items):
        self.items = items
        self.lookup = {v: i for i, v in enumerate(items)}

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("lookup", None)
        return d

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lookup = {v: i for i, v in enumerate(self.items)}


class Info:
    """A class whose __new__ takes arguments and caches its instances (numpy.finfo)."""

    _cache = {}

    def __new__(cls, kind):
        if kind not in cls._cache:
            o = cls._cache[kind] = object.__new__(cls)
            o.kind, o.eps = kind, 2.0 ** -52
        return cls._cache[kind]


class Sentinel:
    """A singleton made by a __new__ that takes no arguments (numpy's _NoValue)."""

    _it = None

    def __new__(cls):
        if cls._it is None:
            cls._it = object.__new__(cls)
        return cls._it


class Lazy:
    """A reader that opens its file at once and reads it on first use; its own pickling reads it (PIL's
    ImageFile, whose __getstate__ decodes the whole image)."""

    def __init__(self, path):
        self.fp = open(path, "rb")
        self.data = None

    def load(self):
        if self.data is None:
            self.data = self.fp.read()
        return self.data

    def __getstate__(self):
        return {"data": self.load()}


class Primes(tuple):
    """A tuple subclass built in its own __new__ from another argument than its value."""

    def __new__(cls, n):
        self = super().__new__(cls, [p for p in range(2, n) if all(p % d for d in range(2, p))])
        self.n = n
        return self


class Shout(str):
    def __new__(cls, s):
        return super().__new__(cls, s.upper() + "!")


class FontPath(str):
    """A str subclass whose __new__ takes more than the value str gives pickle (matplotlib's FontPath)."""

    def __new__(cls, path, face_index):
        ret = super().__new__(cls, path)
        ret._face_index = face_index
        return ret


class Pair(tuple):
    """A tuple subclass whose __new__ takes its items one by one."""

    def __new__(cls, a, b):
        return super().__new__(cls, (a, b))


class Busy(io.StringIO):
    """A class on an extension type that pickles itself its own way."""


class OwnState(JobTest):
    def test_a_dict_subclass_with_getattr_keeps_its_items(self):
        r = Result(x=[1.0, 2.0], nfev=7)
        _, (got,) = checkpoint(self.mod, (r,))
        self.assertEqual(got.x, [1.0, 2.0])
        self.assertEqual(dict(got), dict(r))

    def test_a_half_built_object_in_its_init_is_saved_with_the_state_it_has(self):
        h = Half.__new__(Half)
        h._n = 3  # stopped in __init__ before `_atlas` is set
        _, (got,) = checkpoint(self.mod, (h,), busy=(h,))
        self.assertEqual(got._n, 3)
        self.assertFalse(hasattr(got, "_atlas"))

    def test_a_half_built_object_is_not_given_to_its_own_setstate(self):
        c = Coords.__new__(Coords)
        c.shape = (2, 2)  # stopped in __init__ before `coords` is set
        _, (got,) = checkpoint(self.mod, (c,), busy=(c,))
        self.assertEqual(vars(got), {"shape": (2, 2)})
        _, (done,) = checkpoint(self.mod, (Coords([1], [2]),))  # at rest, through its own __setstate__
        self.assertEqual(done.coords, ([1], [2]))

    def test_what_a_method_in_progress_set_survives_the_objects_own_pickling(self):
        p = Picture()
        p.save()
        _, (got,) = checkpoint(self.mod, (p,), busy=(p,))
        self.assertEqual(vars(got), {"pixels": [1, 2], "encoderinfo": {"optimize": True}})
        _, (rest,) = checkpoint(self.mod, (p,))  # at rest, its own pickling alone
        self.assertEqual(vars(rest), {"pixels": [1, 2]})

    def test_what_a_method_in_progress_set_survives_its_own_pickling_blanking_it(self):
        lab = Label()
        lab.draw(Info("renderer"))
        _, (got,) = checkpoint(self.mod, (lab,), busy=(lab,))
        self.assertEqual(got._renderer.kind, "renderer")
        _, (rest,) = checkpoint(self.mod, (lab,))  # at rest, its own pickling alone
        self.assertIsNone(rest._renderer)

    def test_an_object_in_a_method_comes_back_with_exactly_its_live_attributes_in_order(self):
        t = Tagged()
        _, (got,) = checkpoint(self.mod, (t,), busy=(t,))
        self.assertEqual(list(vars(got).items()), list(vars(t).items()))
        half = Derives.__new__(Derives)
        half.items = ["a"]  # inside __init__, before it set `lookup`
        _, (got,) = checkpoint(self.mod, (half,), busy=(half,))
        self.assertEqual(vars(got), {"items": ["a"]})

    def test_what_its_own_setstate_does_to_the_objects_it_holds_is_undone_in_a_method(self):
        d = Drawing()
        d.save()
        _, (got,) = checkpoint(self.mod, (d,), busy=(d,))
        self.assertEqual((got.dpi, got.scale.k), (72, 72))
        self.assertEqual(list(vars(got)), ["dpi", "original", "scale"])
        _, (rest,) = checkpoint(self.mod, (d,))  # at rest, its own pickling alone
        self.assertEqual((rest.dpi, rest.scale.k), (50, 50))

    def test_an_instance_whose_new_takes_arguments_is_rebuilt_from_its_state(self):
        _, (got,) = checkpoint(self.mod, (Info("float64"),))
        self.assertEqual(vars(got), {"kind": "float64", "eps": 2.0 ** -52})
        _, (one,) = checkpoint(self.mod, (Sentinel(),))  # one that takes none is still called: a singleton
        self.assertIs(one, Sentinel())

    def test_the_standard_streams_come_back_as_the_processs_own(self):
        # A logging handler on stderr, a job's `out = sys.stdout`, the binary layers: the process's streams, by
        # name (they refused every checkpoint while held: "only regular files open for reading are saved").
        import logging

        h = logging.StreamHandler(sys.__stderr__)
        err_raw = getattr(sys.__stderr__.buffer, "raw", sys.__stderr__.buffer)  # no layer when unbuffered
        roots = (h, sys.__stdout__, sys.__stdout__.buffer, err_raw, sys.__stdin__)
        _, got = checkpoint(self.mod, roots)
        self.assertIs(got[0].stream, sys.__stderr__)
        self.assertEqual(got[1:], roots[1:])
        self.assertIs(got[1], sys.__stdout__)
        # Another file open for writing is still refused, named.
        with tempfile.TemporaryFile("w") as f:
            with self.assertRaises(Exception) as e:
                checkpoint(self.mod, (f,))
            self.assertIn("only regular files open for reading", str(e.exception))

    def test_an_object_holding_an_open_file_is_saved_whole_and_its_own_pickling_is_not_run(self):
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".bin") as f:
            f.write(b"0123456789")
            f.flush()
            lazy = Lazy(f.name)
            lazy.fp.seek(3)
            _, (got,) = checkpoint(self.mod, (lazy,))  # at rest
            self.assertIsNone(lazy.data)  # the capture did not read the live job's file
            self.assertEqual(lazy.fp.tell(), 3)
            self.assertIsNone(got.data)
            self.assertEqual(got.load(), b"3456789")  # reopened where the job stood
            got.fp.close()
            lazy.fp.close()

    @unittest.skipIf(__import__("importlib").util.find_spec("PIL") is None, "Pillow is not installed")
    def test_a_lazily_opened_image_is_not_decoded_by_the_capture(self):
        import os

        from PIL import Image

        path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "face", "train_biden_biden2.jpg")
        with Image.open(path) as im:
            _, (got,) = checkpoint(self.mod, (im,))
            self.assertTrue(im.tile)  # not decoded: draft() still takes effect in the live job
            for image in (im, got):
                image.draft("RGB", (image.width // 2, image.height // 2))
                self.assertEqual(image.convert("RGB").size, (600, 600))
            got.close()

    @unittest.skipIf(__import__("importlib").util.find_spec("PIL") is None, "Pillow is not installed")
    def test_pillows_pixel_store_is_saved_with_its_mode_pixels_and_palette(self):
        from PIL import Image

        grad = Image.linear_gradient("L").resize((7, 5))
        images = [grad.convert(m) for m in ("1", "L", "RGB", "RGBA", "I", "F", "CMYK", "LAB")]
        images.append(Image.new("I;16", (3, 2), 300))
        pal = grad.convert("P")
        pal.putpalette([(i * 7) % 256 for i in range(768)])
        images.append(pal)
        cores = [im.im for im in images]
        _, got = checkpoint(self.mod, cores)
        for core, back in zip(cores, got):
            self.assertEqual((back.mode, back.size), (core.mode, core.size))
            self.assertEqual(Image.Image()._new(back).tobytes(), Image.Image()._new(core).tobytes(), core.mode)
        self.assertEqual(got[-1].getpalette("RGB", "RGB"), cores[-1].getpalette("RGB", "RGB"))

    @unittest.skipIf(__import__("importlib").util.find_spec("PIL") is None, "Pillow is not installed")
    def test_an_image_reading_its_file_is_saved_with_its_pixels(self):
        import os

        from PIL import Image

        path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "face", "astronaut.png")
        with Image.open(path) as im:
            im.load()  # decoded; the file stays open in the `with`
            _, (got,) = checkpoint(self.mod, (im,))
            self.assertEqual(got.tobytes(), im.tobytes())
            got.close()

    def test_a_value_subclass_whose_new_takes_more_is_made_from_its_value(self):
        with self.assertRaises(TypeError):  # what plain pickling does with it
            pickle.loads(pickle.dumps(FontPath("/f.ttf", 2)))
        _, (f, p) = checkpoint(self.mod, (FontPath("/f.ttf", 2), Pair(1, [2])))
        self.assertEqual((type(f), f, f._face_index), (FontPath, "/f.ttf", 2))
        self.assertEqual((type(p), p), (Pair, (1, [2])))

    def test_a_value_subclass_with_any_new_of_its_own_is_made_from_its_value(self):
        # Pickle calls its __new__ on the base's value: a tuple built from `n` failed to restore, and a str that
        # changes its argument came back changed twice.
        with self.assertRaises(TypeError):
            pickle.loads(pickle.dumps(Primes(10)))
        self.assertEqual(pickle.loads(pickle.dumps(Shout("hi"))), "HI!!")
        _, (p, s) = checkpoint(self.mod, (Primes(10), Shout("hi")))
        self.assertEqual((type(p), p, p.n), (Primes, (2, 3, 5, 7), 10))
        self.assertEqual((type(s), s), (Shout, "HI!"))

    def test_a_random_generator_in_its_own_method_is_saved_with_its_whole_state(self):
        import random

        rng = random.Random(5)
        rng.gauss(0, 1)  # a pending Gaussian is part of the state
        self.assertFalse(_c_state_reducer(random.Random))
        _, (got,) = checkpoint(self.mod, (rng,), busy=(rng,))
        self.assertEqual([got.gauss(0, 1), got.random(), got.choice(range(100))],
                         [rng.gauss(0, 1), rng.random(), rng.choice(range(100))])

    @unittest.skipIf(__import__("importlib").util.find_spec("pandas") is None, "pandas is not installed")
    def test_a_half_built_range_index_is_restored_without_its_own_new(self):
        import pandas as pd

        half = object.__new__(pd.RangeIndex)  # inside RangeIndex._simple_new, before its fields are set
        _, (got,) = checkpoint(self.mod, (half,), busy=(half,))
        self.assertIs(type(got), pd.RangeIndex)
        got._range = range(2, 9, 3)  # what the resumed _simple_new goes on to do
        self.assertEqual(got._range, range(2, 9, 3))

    def test_an_extension_object_in_its_own_method_is_waited_out(self):
        b = Busy("abc")
        with self.assertRaises(NotResumable):
            checkpoint(self.mod, (b,), busy=(b,))
        _, (got,) = checkpoint(self.mod, (b,))  # at rest, its own pickling is right
        self.assertEqual(got.getvalue(), "abc")

    def test_a_half_built_object_whose_own_pickling_fails_is_saved_with_the_state_it_has(self):
        r = Ranged.__new__(Ranged)  # as a classmethod building it has it on its stack, before `_data` is set
        r.name = "x"
        _, (got,) = checkpoint(self.mod, (r,))
        self.assertIs(type(got), Ranged)
        self.assertEqual(vars(got), {"name": "x"})
        _, (done,) = checkpoint(self.mod, (Ranged([1, 2], "y"),))  # complete: through its own pickling
        self.assertEqual(vars(done), {"_data": [1, 2], "name": "y", "rebuilt": True})

    def test_a_class_that_refuses_to_be_pickled_is_still_refused(self):
        with self.assertRaises(TypeError):
            checkpoint(self.mod, (Refuses(),))

    def test_which_classes_keep_c_state_their_own_pickling_may_drop(self):
        self.assertTrue(_c_state_reducer(Busy))
        for t in (Result, Half, dict, object, type("D", (__import__("collections").OrderedDict,), {})):
            self.assertFalse(_c_state_reducer(t), t)

    @unittest.skipIf(__import__("importlib").util.find_spec("pandas") is None, "pandas is not installed")
    def test_cython_generated_pickling_keeps_the_whole_state_of_a_busy_object(self):
        import pandas as pd

        a = pd.array(["x", None, "z"], dtype="string")
        a.note = "set by a method"
        self.assertFalse(_c_state_reducer(type(a)))  # Cython's own reducer: every C field and the __dict__
        _, (got,) = checkpoint(self.mod, (a,), busy=(a,))
        self.assertEqual(list(got.astype(object)), ["x", pd.NA, "z"])
        self.assertEqual((got.dtype, got.note), (a.dtype, "set by a method"))


class Locks(JobTest):
    def test_locks_come_back_held_as_they_were_and_shared(self):
        import threading

        free, held, rlock = threading.Lock(), threading.Lock(), threading.RLock()
        held.acquire()
        rlock.acquire()
        rlock.acquire()
        try:
            _, (f, h, r, again) = checkpoint(self.mod, (free, held, rlock, free))
            self.assertIs(again, f)
            self.assertEqual((f.locked(), h.locked()), (False, True))
            self.assertTrue(r._is_owned())
            r.release()
            r.release()
            with self.assertRaises(RuntimeError):  # held twice, not three times
                r.release()
            self.assertTrue(rlock._is_owned())  # the capture let go of the live one and took it back
        finally:
            held.release()
            rlock.release()
            rlock.release()

    def test_an_rlock_held_by_another_thread_is_refused(self):
        import threading

        rlock, taken, done = threading.RLock(), threading.Event(), threading.Event()

        def hold():
            with rlock:
                taken.set()
                done.wait(5)

        t = threading.Thread(target=hold)
        t.start()
        taken.wait(5)
        try:
            with self.assertRaises(TypeError):
                checkpoint(self.mod, (rlock,))
        finally:
            done.set()
            t.join()


class CIterators(JobTest):
    def test_pairwise_resumes_where_it_was(self):
        import itertools

        src = [1, 2, 3, 4]
        fresh = itertools.pairwise(iter(src))
        started = itertools.pairwise(iter(src))
        next(started)
        done = itertools.pairwise(iter(src))
        list(done)
        _, got = checkpoint(self.mod, (fresh, started, done))
        self.assertEqual([list(g) for g in got], [[(1, 2), (2, 3), (3, 4)], [(2, 3), (3, 4)], []])
        self.assertIs(type(got[1]), itertools.pairwise)

    def test_a_pairwise_shares_its_source_with_the_job(self):
        import itertools

        it = iter(range(5))
        p = itertools.pairwise(it)
        next(p)
        _, (it2, p2) = checkpoint(self.mod, (it, p))
        self.assertEqual(next(p2), (1, 2))
        self.assertEqual(next(it2), 3)


class Contexts(unittest.TestCase):
    """The job thread's current decimal context and numpy error handling are saved where the job changed them."""

    def test_a_changed_decimal_context_comes_back_as_the_current_one(self):
        import decimal

        from microlambda_rt.capture import _contexts, _set_contexts

        with decimal.localcontext() as ctx:
            ctx.prec = 50
            held = pickle.loads(pickle.dumps((ctx, _contexts())))
        self.assertIs(held[1]["decimal"], held[0])  # one object: the `with` block's and the current context
        _set_contexts(held[1])
        try:
            self.assertIs(decimal.getcontext(), held[0])
            self.assertEqual(len(str(decimal.Decimal(1) / 7)), 52)
        finally:
            decimal.setcontext(decimal.Context())

    def test_numpys_error_handling_is_saved_when_changed(self):
        import numpy as np

        from microlambda_rt.capture import _contexts, _set_contexts

        old = np.seterr(over="raise")
        try:
            saved = _contexts()["numpy_err"]
            np.seterr(**old)
            _set_contexts({"numpy_err": saved})
            self.assertEqual(np.geterr()["over"], "raise")
        finally:
            np.seterr(**old)

    def test_a_redirected_stdout_comes_back_redirected_into_the_restored_buffer(self):
        import contextlib

        from microlambda_rt.capture import _contexts, _set_contexts

        job = _Job(types.ModuleType("streams_job"))  # takes the streams as the job starts
        buf, before = io.StringIO(), sys.stdout
        with contextlib.redirect_stdout(buf):
            print("before")
            held = pickle.loads(pickle.dumps((buf, _contexts(job))))
        self.assertIs(sys.stdout, before)
        self.assertEqual(set(held[1]), {"streams"})
        _set_contexts(held[1])
        try:
            self.assertIs(sys.stdout, held[0])  # one object: the job's buffer and the current stdout
            print("after")
        finally:
            sys.stdout = before
        self.assertEqual(held[0].getvalue(), "before\nafter\n")
        self.assertIsNone(_contexts(job))  # nothing rebound: nothing saved

    def test_environment_and_warnings_filters_the_job_changed_come_back(self):
        import os
        import warnings

        from microlambda_rt.capture import _contexts, _set_contexts

        os.environ["ML_TEST_GONE"] = "1"
        job = _Job(types.ModuleType("env_job"))
        os.environ["ML_TEST_SET"] = "set"
        del os.environ["ML_TEST_GONE"]
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("error", UserWarning)
            held = pickle.loads(pickle.dumps((rec, _contexts(job))))
        os.environ["ML_TEST_GONE"] = "1"
        del os.environ["ML_TEST_SET"]
        before = warnings.filters
        with warnings.catch_warnings():  # what the restored job's own `with` puts back as it leaves
            _set_contexts(held[1])
            try:
                self.assertEqual((os.environ.get("ML_TEST_SET"), "ML_TEST_GONE" in os.environ), ("set", False))
                with self.assertRaises(UserWarning):
                    warnings.warn("raised", UserWarning)
                warnings.warn("recorded", RuntimeWarning)
                self.assertEqual([str(w.message) for w in held[0]], ["recorded"])
            finally:
                os.environ.pop("ML_TEST_SET", None)
        self.assertIs(warnings.filters, before)

    def test_the_working_directory_and_the_int_digits_limit_the_job_changed_come_back(self):
        import os

        from microlambda_rt.capture import _contexts, _set_contexts

        job = _Job(types.ModuleType("cwd_job"))
        here, digits = os.getcwd(), sys.get_int_max_str_digits()
        with tempfile.TemporaryDirectory() as d:
            try:
                os.chdir(d)
                sys.set_int_max_str_digits(50000)
                saved = pickle.loads(pickle.dumps(_contexts(job)))
                os.chdir(here)
                sys.set_int_max_str_digits(digits)
                _set_contexts(saved)
                self.assertEqual((os.getcwd(), len(str(7 ** 20000))), (os.path.realpath(d), 16902))
            finally:
                os.chdir(here)
                sys.set_int_max_str_digits(digits)

    @unittest.skipUnless(all(__import__("importlib").util.find_spec(m) for m in ("pandas", "matplotlib", "sklearn")),
                         "pandas, matplotlib or scikit-learn is not installed")
    def test_library_settings_the_job_changed_come_back(self):
        import matplotlib
        import pandas as pd
        import sklearn

        from microlambda_rt.capture import _contexts, _set_contexts

        job = _Job(types.ModuleType("settings_job"))
        with pd.option_context("display.precision", 2), matplotlib.rc_context({"lines.linewidth": 3.25}), \
                sklearn.config_context(assume_finite=True):
            saved = pickle.loads(pickle.dumps(_contexts(job)))
        self.assertEqual(saved["settings"], {"pandas._config.config": {"display.precision": 2},
                                             "matplotlib": {"lines.linewidth": 3.25},
                                             "sklearn._config": {"assume_finite": True}})
        with pd.option_context("display.precision", 6), matplotlib.rc_context(), sklearn.config_context():
            _set_contexts(saved)
            self.assertEqual(str(pd.Series([1 / 3]))[:9], "0    0.33")
            self.assertEqual(matplotlib.rcParams["lines.linewidth"], 3.25)
            self.assertTrue(sklearn.get_config()["assume_finite"])


if __name__ == "__main__":
    unittest.main()


SENTINEL_SOURCE = """
import abc

MISSING = "<missing value>"

class Opts:
    UNSET = "<unset>"

    def pick(self, x=UNSET):
        return x is Opts.UNSET

def get(d, k, default=MISSING, *, other=MISSING):
    return d.get(k, default) is MISSING and other is MISSING

def plain(x="<missing value>"):
    return x

class Base(abc.ABC):
    pass

class Plain:
    pass

class Early:
    pass

Base.register(Early)
"""


class ModuleConstantsAndRegistries(unittest.TestCase):
    """What the job's module, run again on restore, makes afresh and the checkpoint must bring back as it was."""

    def setUp(self):
        self.mod = fake_module("sentinel_job", SENTINEL_SOURCE)

    def tearDown(self):
        sys.modules.pop("sentinel_job", None)

    def checkpoint(self, held=()):
        """Save the module's globals, classes' data and functions' state as a capture does, load the module
        again and put them back as a restore does."""
        from microlambda_rt.capture import _class_state, _function_state, _job_classes
        from microlambda_rt.restore import _set_class_state, _set_function_state

        m = self.mod
        job = _Job(m)
        classes = _class_state(job, _job_classes(job))
        fs = _function_state(job, None, classes)
        g = {"MISSING": m.MISSING}
        cap = _Capture(job, {})
        buf = io.BytesIO()
        _Pickler(buf, cap).dump((g, classes, fs, held))
        fresh = fake_module(m.__name__, SENTINEL_SOURCE)
        g, classes, fs, held = pickle.loads(buf.getvalue(), buffers=cap.buffers)
        fresh.__dict__.update(g)
        _set_class_state(fresh, classes)
        _set_function_state(fresh, fs)
        return fresh, classes, fs, held

    def test_a_constant_default_that_is_a_global_or_class_attribute_stays_that_object(self):
        fresh, _, fs, (held,) = self.checkpoint((self.mod.MISSING,))
        # `plain`'s default is the module code's one constant object that MISSING is bound to as well
        self.assertEqual(set(fs), {"get", "plain", "Opts.pick"})
        self.assertIs(fresh.plain(), fresh.MISSING)
        self.assertTrue(fresh.get({}, 1), "`default is MISSING` after the restore")
        self.assertIs(held, fresh.MISSING, "a frame's reference is the global")
        self.assertTrue(fresh.Opts().pick())

    def test_virtual_subclasses_registered_at_run_time_are_registered_again(self):
        from microlambda_rt.pickler import _AbcRegistered

        m = self.mod
        m.Base.register(m.Plain)
        fresh, classes, _, _ = self.checkpoint()
        self.assertIs(type(classes["Base"]["_abc_impl"]), _AbcRegistered)
        self.assertTrue(isinstance(fresh.Plain(), fresh.Base))
        self.assertTrue(issubclass(fresh.Early, fresh.Base))
        self.assertNotIn("Plain", classes, "an ABC with nothing registered saves no registry")


class Biased(__import__("random").Random):
    """A `random.Random` subclass whose __init__ takes arguments and that keeps attributes of its own."""

    def __init__(self, seed, bias):
        super().__init__(seed)
        self.bias = bias
        self.calls = 0

    def random(self):
        self.calls += 1
        return super().random() * self.bias


class StdlibStateDropped(JobTest):
    """Objects whose usual pickling (their class's, or cloudpickle's) drops state a job relies on."""

    def roundtrip(self, root):
        cap = _Capture(_Job(self.mod), {})
        buf = io.BytesIO()
        _Pickler(buf, cap).dump(root)
        return pickle.loads(buf.getvalue(), buffers=cap.buffers)

    def test_a_random_subclass_whose_init_takes_arguments_comes_back_with_its_state_and_attributes(self):
        r = Biased(7, 0.5)
        r.gauss(0, 1)  # leaves the second normal pending
        r.random()
        back = self.roundtrip(r)
        self.assertIs(type(back), Biased)
        self.assertEqual((back.bias, back.calls), (0.5, r.calls))
        self.assertEqual([back.gauss(0, 1), back.random(), back.choice("abcdef")],
                         [r.gauss(0, 1), r.random(), r.choice("abcdef")])

    def test_a_weakset_being_iterated_keeps_its_iteration_guard(self):
        import weakref

        class Node:
            pass

        nodes = [Node() for _ in range(4)]
        ws = weakref.WeakSet(nodes)
        it = iter(ws)
        next(it)  # the generator has entered its _IterationGuard
        guard = next(iter(ws._iterating))
        back, g, kept = self.roundtrip((ws, guard, nodes))
        self.assertEqual(back._iterating, {g}, "the guard the loop's end removes")
        self.assertIs(g.weakcontainer(), back)
        self.assertEqual(len(back), 4)
        del kept[0]
        self.assertEqual(len(back), 3, "a member that dies still leaves the set")
    def test_a_super_object_comes_back_bound_to_the_same_object(self):
        r = Biased(3, 0.5)
        s = super(Biased, r)
        back, sb = self.roundtrip((r, s))
        self.assertIs(type(sb), super)
        self.assertIs(sb.__self__, back)
        self.assertIs(sb.__thisclass__, Biased)
        self.assertEqual(sb.random(), r.random() / 0.5, "the base's method, not the subclass's")
        self.assertIsNone(self.roundtrip(super(Biased)).__self__)


class LibraryDefaults(JobTest):
    """Default values of a library's functions running in checkpointed frames come back as the restoring
    process's own objects: a library tests its sentinels with `is`."""

    def test_a_methods_default_sentinel_comes_back_as_itself(self):
        from collections.abc import MutableMapping

        from microlambda_rt.pickler import index_defaults

        index_defaults(MutableMapping.pop)  # what a capture does for each frame of the chain
        marker = MutableMapping.pop.__defaults__[0]
        _, back = checkpoint(self.mod, [marker, marker])
        self.assertIs(back[0], marker)
        self.assertIs(back[1], marker)

    def test_keyword_only_and_static_method_defaults_are_found_by_their_path(self):
        from microlambda_rt.pickler import _EXTERN, index_defaults

        src = "class K:\n    @staticmethod\n    def f(a, b=object(), *, c=object()):\n        pass\n"
        lib = fake_module("lib_defaults_probe", src)
        lib.K.f.__module__ = "lib_defaults_probe"
        try:
            index_defaults(lib.K.f)
            b, c = lib.K.f.__defaults__[0], lib.K.f.__kwdefaults__["c"]
            self.assertEqual(_EXTERN[id(b)], ("lib_defaults_probe", "K", (("d", "f"), ("f",), ("p", 0))))
            _, back = checkpoint(self.mod, [b, c])
            self.assertIs(back[0], b)
            self.assertIs(back[1], c)
        finally:
            sys.modules.pop("lib_defaults_probe", None)


    def test_a_default_container_is_handed_to_the_worker_with_its_path_and_found_by_it(self):
        # A list, dict, set or bytearray default is saved by the worker's persistent_id (src/py/libstate.rs):
        # the capture hands it over with its path, the function that holds it and where; a restore follows it.
        from microlambda_rt import pickler

        src = "class K:\n    @classmethod\n    def f(cls, a, memo={}, *, seen=[]):\n        pass\n"
        lib = fake_module("lib_default_containers", src)
        lib.K.f.__func__.__module__ = "lib_default_containers"
        rs, handed = sys.modules["_mlrs"], []
        rs.index_paths = handed.extend
        try:
            pickler.index_defaults(lib.K.f.__func__)
            f = lib.K.__dict__["f"].__func__
            path = (("d", "f"), ("f",))
            self.assertEqual([e[:3] for e in handed], [("lib_default_containers", "K", path + (("p", 0),)),
                                                       ("lib_default_containers", "K", path + (("k", "seen"),))])
            for (_, _, _, namespace, root, holder, key, value), want in zip(handed, [0, "seen"]):
                self.assertIs(namespace, lib.__dict__)
                self.assertIs(root, lib.K)
                self.assertIs(holder, f)
                self.assertEqual(key, want)
            self.assertIs(handed[0][7], f.__defaults__[0])
            self.assertIs(pickler._extern_container("lib_default_containers", ("K", handed[1][2])),
                          f.__kwdefaults__["seen"])
            # A frame restored earlier runs a morph of its own standing for f: its original code finds f.
            handed.clear()
            morph = types.FunctionType(compile("pass", "<morph>", "exec"), lib.__dict__, "f", (None, None))
            morph.__qualname__ = "K.f"
            pickler.index_defaults(morph)
            self.assertEqual(handed, [])
            again = types.FunctionType(morph.__code__, lib.__dict__, "f")
            again.__qualname__ = "K.f"
            pickler.index_defaults(again, f.__code__)
            self.assertEqual([e[5] for e in handed], [f, f])
        finally:
            del rs.index_paths
            sys.modules.pop("lib_default_containers", None)


class ScalarSubclasses(JobTest):
    def test_a_library_constant_of_a_scalar_subclass_that_refuses_pickling_is_saved_by_reference(self):
        # re's opcodes are int subclasses with `__reduce__ = None`: a parse tree, which re's compiler holds in a
        # local while it compiles a pattern, could not be saved, and every checkpoint there waited.
        import re._compiler
        import re._constants
        import re._parser

        tree = re._parser.parse(r"(?P<w>\w+)-[0-9]{2,}|x*?")
        _, back = checkpoint(self.mod, [tree])
        self.assertIs(back[0].data[0][0], tree.data[0][0])
        self.assertIs(type(back[0].data[0][0]), re._constants._NamedIntConstant)
        self.assertEqual(re._compiler._code(back[0], 0), re._compiler._code(tree, 0))


class NumpySubclassesInTheirMethods(JobTest):
    """An ndarray subclass keeping its state in the array and its __dict__ (a masked array) is saved whole, so
    one in the middle of its own method (`MaskedArray.__setitem__`) is saved as at rest: it was waited out as a
    C type pickling itself, and its own pickling copied the mask a view of it shares."""

    @unittest.skipIf(__import__("importlib").util.find_spec("numpy") is None, "numpy not installed")
    def test_a_busy_masked_array_and_its_view_come_back_sharing_data_and_mask(self):
        import numpy as np

        ma = np.ma.masked_array(np.arange(6.0), mask=[1, 0, 0, 1, 0, 0], hard_mask=True)
        view = ma[1:4]
        _, (ma2, view2) = checkpoint(self.mod, (ma, view), busy=(ma,))
        view2[0] = 9.0
        view2[2] = 9.0  # masked, and the mask is hard
        ma2.mask[5] = True  # the view's mask is a view of this one
        self.assertEqual((ma2.data.tolist(), ma2._hardmask), ([0.0, 9.0, 2.0, 3.0, 4.0, 5.0], True))
        self.assertEqual(view2.mask.tolist(), [False, False, True])
        self.assertTrue(np.shares_memory(view2.mask, ma2.mask))


class StateOnlyCKeeps(JobTest):
    """Objects whose whole state lives in a C library with no way to read it back are refused, never saved as
    something else: a hash in progress (`_hashlib.HASH`: OpenSSL's digest context; `copy()` makes another in C,
    nothing gives its bytes)."""

    def test_a_hash_in_progress_is_refused(self):
        import hashlib

        for h in (hashlib.sha256(b"abc"), hashlib.md5(), hashlib.blake2b(b"x")):
            with self.assertRaisesRegex(Exception, "cannot pickle"):
                checkpoint(self.mod, {"h": h})


@unittest.skipIf(__import__("importlib").util.find_spec("numpy") is None, "numpy not installed")
class NumpyScalars(JobTest):
    def test_numpy_scalars_come_back_bit_for_bit_of_their_type_and_shared_ones_stay_one(self):
        import numpy as np

        values = [np.float64(0.1), np.float64(-0.0), np.float64("nan"), np.float64("-inf"), np.float32(1 / 3),
                  np.float16(0.7), np.int8(-5), np.uint64(2**64 - 1), np.int64(-2**63), np.bool_(True),
                  np.complex64(1 + 2j), np.complex128(3 - 1e-300j), np.longlong(7), np.ulonglong(8),
                  np.longdouble(1) / 3, np.datetime64("2026-12-06T10:00", "m"), np.timedelta64(5, "us")]
        shared = np.float64(2.5)
        _, back = checkpoint(self.mod, (values, [shared, shared]))
        for v, w in zip(values, back[0]):
            self.assertIs(type(w), type(v))
            self.assertEqual(w.tobytes(), v.tobytes(), f"{type(v).__name__}: {v!r} came back as {w!r}")
        self.assertIs(back[1][0], back[1][1])

    def test_bool_int_and_small_float_scalars_take_the_short_way_and_the_others_numpys(self):
        import numpy as np

        from microlambda_rt.pickler import _exact_numpy_scalar

        for t in (np.bool_, np.int8, np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128):
            self.assertTrue(_exact_numpy_scalar(t), t)
        for t in (np.longdouble, np.clongdouble, np.datetime64, np.timedelta64, np.str_, np.bytes_, np.void,
                  float, int):
            self.assertFalse(_exact_numpy_scalar(t), t)


class PlainArrays(JobTest):
    """Plain numpy arrays take a handler of their own (`_save_ndarray`), the general path's steps that apply to
    them only: a library module's array by reference, a view as a view, an owning array by numpy's way."""

    def test_a_library_modules_array_stays_itself_its_view_a_view_of_it_and_an_own_array_a_copy(self):
        import numpy as np

        lib = types.ModuleType("lib_plain_arrays")
        lib.TABLE = np.arange(6.0)
        sys.modules["lib_plain_arrays"] = lib
        try:
            own = np.ones(3)
            _, (table, view, copy) = checkpoint(self.mod, (lib.TABLE, lib.TABLE[2:], own))
            self.assertIs(table, lib.TABLE)
            view[0] = -1.0
            self.assertEqual(lib.TABLE[2], -1.0)
            self.assertIsNot(copy, own)
            np.testing.assert_array_equal(copy, own)
        finally:
            del sys.modules["lib_plain_arrays"]


class OpenFileAttributes(unittest.TestCase):
    """Whether an object's attributes hold an open file (`_holds_open_file`) is looked up per attribute type, and
    must still say what `isinstance(v, io.IOBase)` would."""

    def test_a_class_registered_as_a_file_after_its_instances_were_seen_counts_from_then_on(self):
        import io

        from microlambda_rt.pickler import _holds_open_file

        class Handle:  # file-like, not derived from io.IOBase
            closed = False

        holder = types.SimpleNamespace(h=Handle(), n=1)
        self.assertFalse(_holds_open_file(holder))
        io.IOBase.register(Handle)
        self.assertTrue(_holds_open_file(holder))
        holder.h.closed = True
        self.assertFalse(_holds_open_file(holder))

    def test_a_proxy_of_an_open_file_counts_as_the_file(self):
        import weakref

        from microlambda_rt.pickler import _holds_open_file

        with tempfile.TemporaryFile() as f:
            self.assertTrue(_holds_open_file(types.SimpleNamespace(p=weakref.proxy(f))))
            self.assertTrue(_holds_open_file(types.SimpleNamespace(f=f)))
        self.assertFalse(_holds_open_file(types.SimpleNamespace(f=f)))


class LibraryContainers(unittest.TestCase):
    """The lists, dicts, sets and bytearrays a library module binds (its registries: `PIL.Image.ID`) are handed
    to the worker's `persistent_id` as the module is indexed (`_mlrs.index_containers`, src/py/libstate.rs,
    absent here), to be saved by reference; a restore finds each by module and name, and refuses anything else."""

    def test_an_importable_modules_containers_are_listed_with_its_namespace(self):
        import importlib.machinery

        from microlambda_rt import pickler
        from microlambda_rt.base import RestoreError

        rs, seen = sys.modules["_mlrs"], []
        lib = types.ModuleType("zz_registry_lib")
        lib.__spec__ = importlib.machinery.ModuleSpec("zz_registry_lib", None)
        lib.ID, lib.OPEN, lib.SEEN, lib.BUF, lib.KINDS, lib.NAME = [], {}, set(), bytearray(b"x"), ("a",), "png"
        made = types.ModuleType("zz_registry_made")  # no spec: a restore could not import it to look it up
        made.ID = []
        lib.__dict__[7] = []  # a key that is no name (`globals()[7] = ...`): not one a restore can look up
        rs.index_containers = seen.extend
        sys.modules.update(zz_registry_lib=lib, zz_registry_made=made)
        try:
            pickler._index_externs()
            self.assertIs(pickler._extern_container("zz_registry_lib", "OPEN"), lib.OPEN)
            with self.assertRaises(RestoreError):
                pickler._extern_container("zz_registry_lib", "KINDS")
        finally:
            del rs.index_containers, sys.modules["zz_registry_lib"], sys.modules["zz_registry_made"]
        got = {(m, k): (d, v) for m, k, d, v in seen if m.startswith("zz_registry")}
        self.assertEqual(sorted(got), [("zz_registry_lib", k) for k in ("BUF", "ID", "OPEN", "SEEN")])
        for (_, k), (d, v) in got.items():
            self.assertIs(d, lib.__dict__)
            self.assertIs(v, getattr(lib, k))

    def test_the_classes_a_module_binds_are_handed_to_the_worker_and_their_attributes_found_by_path(self):
        import importlib.machinery

        from microlambda_rt import pickler
        from microlambda_rt.base import RestoreError

        rs, seen = sys.modules["_mlrs"], []
        lib = fake_module("zz_registry_classes", "class Codecs:\n    known = {}\n    class Inner:\n        order = []\n")
        lib.__spec__ = importlib.machinery.ModuleSpec("zz_registry_classes", None)
        lib.Alias = lib.Codecs
        rs.index_classes = lambda entries, externs, by_value: seen.extend(entries)
        try:
            pickler._index_externs()
            self.assertIs(pickler._extern_container("zz_registry_classes", ("Codecs", (("d", "known"),))),
                          lib.Codecs.known)
            inner = ("Codecs", (("d", "Inner"), ("d", "order")))
            self.assertIs(pickler._extern_container("zz_registry_classes", inner), lib.Codecs.Inner.order)
            with self.assertRaises(RestoreError):  # the path reaches no container here
                pickler._extern_container("zz_registry_classes", ("Codecs", (("d", "gone"),)))
        finally:
            del rs.index_classes
            sys.modules.pop("zz_registry_classes", None)
        # Every class it binds, aliases too: the worker keeps those its module defines under that name.
        got = sorted((k, v) for m, k, d, v in seen if m == "zz_registry_classes" and d is lib.__dict__)
        self.assertEqual(got, [("Alias", lib.Codecs), ("Codecs", lib.Codecs)])

    def test_an_iterator_over_a_library_list_goes_on_over_the_items_it_had(self):
        import importlib.machinery

        from microlambda_rt import pickler

        rs = sys.modules["_mlrs"]
        lib = types.ModuleType("zz_registry_iter")
        lib.__spec__ = importlib.machinery.ModuleSpec("zz_registry_iter", None)
        lib.ID = ["JPEG", "MPO", "PNG"]
        it = iter(lib.ID)
        next(it)
        saver = types.SimpleNamespace(extern={id(lib.ID): ("zz_registry_iter", "ID")})
        self.assertIs(pickler._save_list_iterator(saver, it), NotImplemented)  # no worker: saved by value
        rs.container_ref = lambda c: ("zz_registry_iter", "ID") if c is lib.ID else None  # as libstate.rs says
        sys.modules["zz_registry_iter"] = lib
        try:
            fn, (lst, index, items) = pickler._save_list_iterator(saver, it)
            self.assertIs(pickler._save_list_iterator(types.SimpleNamespace(extern={}), iter([1, 2])), NotImplemented)
        finally:
            del rs.container_ref, sys.modules["zz_registry_iter"]
        self.assertEqual((lst, index, items), (lib.ID, 1, ("JPEG", "MPO", "PNG")))
        # The restoring process's list holds the same items, and more registered since: the iterator is over it.
        here = ["JPEG", "MPO", "PNG", "GIF"]
        again = fn(here, index, items)
        here.append("BMP")
        self.assertEqual(list(again), ["MPO", "PNG", "GIF", "BMP"])
        # Filled in another order: the rest of the items the iterator had, none skipped or yielded twice.
        self.assertEqual(list(fn(["PNG", "JPEG", "MPO"], index, items)), ["MPO", "PNG"])
        self.assertEqual(list(fn(["JPEG"], index, items)), ["MPO", "PNG"])

    def test_an_iterator_over_a_library_dict_goes_on_over_the_entries_it_had(self):
        import importlib.machinery

        from microlambda_rt import pickler
        from microlambda_rt.views import _DICT_ITERS, _LIVE, _library_dict_iter

        rs = sys.modules["_mlrs"]
        lib = types.ModuleType("zz_registry_dict")
        lib.__spec__ = importlib.machinery.ModuleSpec("zz_registry_dict", None)
        lib.OPEN = {"JPEG": 1, "MPO": 2, "PNG": 3}
        it = iter(lib.OPEN.items())
        next(it)
        self.assertIn(type(it), _DICT_ITERS)
        saver = types.SimpleNamespace(extern={id(lib.OPEN): ("zz_registry_dict", "OPEN")})
        rs.container_ref = lambda c: ("zz_registry_dict", "OPEN") if c is lib.OPEN else None
        sys.modules["zz_registry_dict"] = lib
        try:
            fn, args = pickler._over_library_dict(saver, _LIVE[type(it)](it))
        finally:
            del rs.container_ref, sys.modules["zz_registry_dict"]
        self.assertIs(fn, _library_dict_iter)
        self.assertEqual(args, (lib.OPEN, "items", False, 1, [("MPO", 2), ("PNG", 3)]))
        # The same entries in the restoring process: the iterator is over its dict.
        self.assertEqual(list(fn({"JPEG": 1, "MPO": 2, "PNG": 3}, *args[1:])), [("MPO", 2), ("PNG", 3)])
        # Filled in another order, or with more: the entries it had left, as they were.
        self.assertEqual(list(fn({"PNG": 3, "JPEG": 1, "MPO": 2}, *args[1:])), [("MPO", 2), ("PNG", 3)])
        self.assertEqual(list(fn({"JPEG": 1, "MPO": 2, "PNG": 3, "GIF": 4}, *args[1:])), [("MPO", 2), ("PNG", 3)])
