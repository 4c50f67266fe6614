"""The library packages a checkpoint records (``capture.library_imports``): the node picks the zygote it forks a
restore from by them, so they must name exactly the importable, non-stdlib, non-job top-level packages."""

import sys
import types
import unittest

from microlambda_rt import state
from microlambda_rt.capture import _LIBS, library_imports
from microlambda_rt.restore import restored_imports

from .helpers import fake_module


class LibraryImports(unittest.TestCase):
    def setUp(self):
        self.added = []
        # The cache is keyed by the number of modules, which tests that add and remove modules bring back.
        _LIBS[0] = -1

    def tearDown(self):
        for name in self.added:
            sys.modules.pop(name, None)
            state._JOB_MODULES.discard(name)

    def module(self, name, file="/x/lib.py"):
        m = types.ModuleType(name)
        if file is not None:
            m.__file__ = file
        sys.modules[name] = m
        self.added.append(name)
        return m

    def test_libraries_are_named_by_their_top_level_package_and_sorted(self):
        self.module("zz_mllib")
        self.module("zz_mllib.sub")
        self.module("aa_mllib.only_sub")
        got = library_imports()
        self.assertIn("zz_mllib", got)
        self.assertIn("aa_mllib", got)
        self.assertNotIn("zz_mllib.sub", got)
        self.assertEqual(list(got), sorted(got))

    def test_stdlib_runtime_private_fileless_and_job_modules_are_left_out(self):
        import json  # noqa: F401  (stdlib, with a file)

        self.module("_zz_private")
        self.module("zz_builtin_like", file=None)
        fake_module("mljob_zz_imports", "x = 1\n")
        state._JOB_MODULES.add("mljob_zz_imports")  # as job.load_module registers a job's module
        self.added.append("mljob_zz_imports")
        self.module("zz_mllib_control")
        got = library_imports()
        self.assertIn("zz_mllib_control", got)
        import cloudpickle  # noqa: F401  (the runtime's own dependency: every zygote has it)

        for name in ("json", "sys", "microlambda_rt", "cloudpickle", "_mlrs", "_zz_private", "zz_builtin_like",
                     "mljob_zz_imports"):
            self.assertNotIn(name, got)

    def test_the_answer_is_cached_until_modules_come_or_go(self):
        a = library_imports()
        self.assertIs(library_imports(), a)
        self.module("zz_mllib_new")
        b = library_imports()
        self.assertIn("zz_mllib_new", b)
        self.assertIsNot(a, b)


class RestoredImports(unittest.TestCase):
    """What a restore imported (since the worker was warmed): a zygote for the checkpoint's set imports it."""

    def test_modules_imported_since_warm_in_order_without_the_jobs_or_spec_less_ones(self):
        import importlib.machinery

        old = state.WARM_MODULES
        state.WARM_MODULES = frozenset(sys.modules)
        added = []
        try:
            for name in ("zz_lib_b", "zz_lib_a.sub", "zz_nospec", "mljob_zz_restored"):
                m = types.ModuleType(name)
                if name != "zz_nospec":
                    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
                sys.modules[name] = m
                added.append(name)
            state._JOB_MODULES.add("mljob_zz_restored")
            self.assertEqual(restored_imports(), ["zz_lib_b", "zz_lib_a.sub"])
        finally:
            state.WARM_MODULES = old
            for name in added:
                sys.modules.pop(name, None)
            state._JOB_MODULES.discard("mljob_zz_restored")


class ModulesSince(unittest.TestCase):
    """What sys.modules gained since a mark, found from its end without touching every name (a fresh child of a
    zygote would copy them all), or None when the end cannot tell (the caller then walks them all)."""

    def setUp(self):
        self.added = []

    def tearDown(self):
        for name in self.added:
            sys.modules.pop(name, None)

    def add(self, name):
        sys.modules[name] = types.ModuleType(name)
        self.added.append(name)

    def test_the_names_added_since_in_order_for_a_set_and_a_module_mark(self):
        from microlambda_rt.base import modules_since

        for mark in (frozenset(sys.modules), state.ModuleMark()):
            self.assertEqual(modules_since(mark), [])
            self.add("zz_since_b")
            self.add("zz_since_a")
            self.assertEqual(modules_since(mark), ["zz_since_b", "zz_since_a"])
            self.tearDown()
            self.added = []

    def test_none_when_a_marked_name_left_or_moved(self):
        from microlambda_rt.base import modules_since

        self.add("zz_since_old")
        self.add("zz_since_last")
        mark = frozenset(sys.modules)
        del sys.modules["zz_since_old"]
        self.assertIsNone(modules_since(mark), "a marked name left")
        sys.modules["zz_since_old"] = types.ModuleType("zz_since_old")
        self.assertEqual(modules_since(mark), [], "back, at the end: nothing new")
        self.add("zz_since_new")
        m = sys.modules.pop("zz_since_last")
        sys.modules["zz_since_last"] = m  # a marked name moved after a new one: the end alone cannot tell
        self.assertIsNone(modules_since(mark))

    def test_no_mark_tells_nothing_and_the_items_are_then_every_module(self):
        from microlambda_rt.base import module_items, modules_since

        self.assertIsNone(modules_since(None))
        self.assertEqual([k for k, _ in module_items(None)], list(sys.modules))
        self.add("zz_since_item")
        self.assertEqual(module_items(["zz_since_item"]), [("zz_since_item", sys.modules["zz_since_item"])])

    def test_a_module_mark_holds_the_warm_names_and_those_since(self):
        old = state.WARM_MODULES
        try:
            state.WARM_MODULES = frozenset(sys.modules)
            self.add("zz_since_after_warm")
            mark = state.ModuleMark()
            self.assertIn("zz_since_after_warm", mark)
            self.assertIn("sys", mark)
            self.assertNotIn("zz_since_never", mark)
            self.assertEqual(len(mark), len(sys.modules))
            self.assertIs(mark.warm, state.WARM_MODULES, "the warm names are shared, not copied")
        finally:
            state.WARM_MODULES = old


if __name__ == "__main__":
    unittest.main()


class CollectorHeldOff(unittest.TestCase):
    """No collection runs while a capture saves the state (its finalizers could change that state mid-save);
    the collector is back as it was afterwards, whichever way the capture ends."""

    def test_the_collector_is_off_during_a_capture_and_back_after(self):
        import gc
        import importlib

        from microlambda_rt.base import NotResumable

        cap_mod = importlib.import_module("microlambda_rt.capture")  # the package exports the function too

        seen = []

        def fake(chain, thread_exc):
            seen.append(gc.isenabled())
            if chain == "fail":
                raise NotResumable("no")
            return "ok"

        real, cap_mod._capture = cap_mod._capture, fake
        try:
            self.assertTrue(gc.isenabled())
            self.assertEqual(cap_mod.capture("x", None), "ok")
            with self.assertRaises(NotResumable):
                cap_mod.capture("fail", None)
            self.assertTrue(gc.isenabled())
            gc.disable()  # a job that turned it off keeps it off
            try:
                cap_mod.capture("x", None)
                self.assertFalse(gc.isenabled())
            finally:
                gc.enable()
        finally:
            cap_mod._capture = real
        self.assertEqual(seen, [False, False, False])
