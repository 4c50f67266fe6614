"""The package as the worker and its pickles see it: the names the Rust half uses, reconstruction helpers
importable by module and name (the new ones and the names of checkpoints made before the split), modules
importing only those below them, and the runtime never indexing itself as library state."""

import ast
import importlib
import pathlib
import pickle
import unittest

import microlambda_rt
from microlambda_rt import pickler, views

PACKAGE_DIR = pathlib.Path(microlambda_rt.__file__).parent

# Bottom-up, as microlambda_rt/__init__.py lists them.
LAYERS = ["base", "ops", "tables", "analysis", "morph", "trampolines", "identity", "views", "cyfields", "files", "refs",
          "state", "pickler", "capture", "restore", "job"]

# What src/py calls or reads on the package (`getattr` on microlambda_rt) and the exception names it matches.
RUST_NAMES = ["capture", "restore", "NULL", "load_module", "start", "finish", "warm", "encode_output",
              "format_exception", "begin_restored", "NotResumable", "CheckpointError", "restored_imports",
              "preload_module", "import_for_forks"]

# Globals a pickle made by the single-file runtime could name as microlambda_rt.<name>.
V1_PICKLE_NAMES = ["NULL", "_EMPTY_CELL", "_lookup_code", "_make_cell", "_cell_set", "_make_function",
                   "_function_setstate", "_extern", "_make_exception", "_make_gen", "_gen_setstate",
                   "_make_created_gen", "_exhausted_gen", "_dict_view", "_dict_iter", "_make_memoryview",
                   "_remake_match", "_np_view"]


class Surface(unittest.TestCase):
    def test_the_rust_half_finds_its_names(self):
        for name in RUST_NAMES:
            self.assertTrue(hasattr(microlambda_rt, name), name)
        self.assertEqual(microlambda_rt.NotResumable.__name__, "NotResumable")
        self.assertEqual(microlambda_rt.CheckpointError.__name__, "CheckpointError")

    def test_every_module_is_in_the_layer_list_and_says_why_it_exists(self):
        on_disk = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")
        self.assertEqual(on_disk, sorted(LAYERS))
        for p in PACKAGE_DIR.glob("*.py"):
            self.assertTrue(ast.get_docstring(ast.parse(p.read_text())), f"{p.name} has no docstring")

    def test_modules_import_only_the_layers_below_them(self):
        for i, name in enumerate(LAYERS):
            tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    deps = [node.module] if node.module else [a.name for a in node.names]
                    for dep in deps:
                        self.assertIn(dep, LAYERS[:i], f"{name} imports {dep}, which is not below it")


class PickledNames(unittest.TestCase):
    def test_reconstruction_helpers_resolve_by_their_own_module(self):
        for name in V1_PICKLE_NAMES:
            obj = getattr(microlambda_rt, name)
            module = getattr(obj, "__module__", None) or type(obj).__module__
            self.assertTrue(module.startswith("microlambda_rt."), name)
            self.assertIs(getattr(importlib.import_module(module), name), obj, name)
            self.assertIs(pickle.loads(pickle.dumps(obj)), obj, name)

    def test_names_of_checkpoints_before_the_split_still_resolve(self):
        for name in V1_PICKLE_NAMES:
            old = f"cmicrolambda_rt\n{name}\n.".encode()  # a protocol-0 GLOBAL, as the old pickles hold
            self.assertIs(pickle.loads(old), getattr(microlambda_rt, name), name)

    def test_singletons_pickle_as_themselves(self):
        self.assertIs(pickle.loads(pickle.dumps(microlambda_rt.NULL)), microlambda_rt.NULL)
        self.assertIs(pickle.loads(pickle.dumps(pickler._EMPTY_CELL)), pickler._EMPTY_CELL)

    def test_view_helpers_live_with_their_reducers(self):
        self.assertEqual(views._dict_view.__module__, "microlambda_rt.views")
        self.assertEqual(pickler._make_cell.__module__, "microlambda_rt.pickler")


class Cells(unittest.TestCase):
    def test_cells_come_back_full_or_empty(self):
        full = pickler._make_cell()
        pickler._cell_set(full, 7)
        self.assertEqual(full.cell_contents, 7)
        empty = pickler._make_cell()
        pickler._cell_set(empty, pickler._EMPTY_CELL)
        with self.assertRaises(ValueError):
            empty.cell_contents


class ExternIndex(unittest.TestCase):
    def test_the_runtime_is_never_library_state(self):
        pickler._EXTERN_NMODS = -1
        pickler._index_externs()
        self.assertTrue(pickler._EXTERN)
        own = {m for m, _ in pickler._EXTERN.values() if m == "microlambda_rt" or m.startswith("microlambda_rt.")}
        self.assertEqual(own, set())
        self.assertNotIn(id(microlambda_rt.NULL), pickler._EXTERN)


if __name__ == "__main__":
    unittest.main()


class ExternIndexCount(unittest.TestCase):
    def test_a_job_module_does_not_make_the_index_walk_sys_modules_again(self):
        import sys
        import types

        from microlambda_rt import state

        pickler._index_externs()
        count = pickler._EXTERN_NMODS
        name = "_ml_test_job_module"
        sys.modules[name] = types.ModuleType(name)
        state._JOB_MODULES.add(name)
        try:
            self.assertEqual(pickler._library_module_count(), count, "a job's module is not a library")
            self.assertEqual(pickler._library_module_count(skip=("_ml_not_loaded",)), count)
            sys.modules["_ml_test_library"] = types.ModuleType("_ml_test_library")
            self.assertEqual(pickler._library_module_count(), count + 1, "a new library is seen")
        finally:
            sys.modules.pop("_ml_test_library", None)
            sys.modules.pop(name, None)
            state._JOB_MODULES.discard(name)
