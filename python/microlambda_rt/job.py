"""The job entry points the worker calls around a run: warm the worker, load a job's module from source, start
it, encode its result or format its error, finish it.
"""

import json
import linecache
import random
import sys
import traceback
import types

from . import state
from .analysis import code_info
from .capture import _LIBS
from .identity import _forget_job_module, _index_module, _note_job_module, _note_loaded_modules, code_hash
from .pickler import _EXTERN_MARK, _index_externs, bind_input, index_static_types, index_statics, unbind_input


def warm():
    """Called by the worker once it is up: pay the one-time costs before any job runs."""
    if "numpy" in sys.modules:
        # numpy imports numpy.random lazily; importing it here gives jobs a baseline of the legacy global RNG
        # (saved only when a job changes it) and keeps its import out of restores.
        import numpy.random  # noqa: F401
    _index_externs()
    index_static_types()
    _note_loaded_modules()
    state.WARM_MODULES = frozenset(sys.modules)


def _rng_states():
    npr = sys.modules.get("numpy.random")
    return random.getstate(), (npr.get_state(legacy=True) if npr is not None and hasattr(npr, "get_state") else None)


def _np_changed(before, after):
    if before is None or after is None:
        return after is not None  # numpy.random came with the top level: it may have seeded it
    return any(not (a == b).all() if hasattr(a, "all") else a != b for a, b in zip(before, after))


def load_module(name, filename, source):
    """Compile and execute a job's module under `name`. SyntaxError propagates (the worker reports it).

    In a child of a module zygote (`preload_module`) the module is already loaded: the identical source is
    taken as it is (its top level is not run again); any other module is refused."""
    pre = state.PRELOADED
    if pre is not None:
        if pre == (name, filename, source) and name in sys.modules:
            return sys.modules[name]
        raise ImportError("this worker was forked from a zygote of another job's module")
    old = sys.modules.get(name)
    if old is not None and name not in state._JOB_MODULES:
        raise ImportError(f"the job's module name {name!r} is already taken by an installed module; rename the job")
    code = compile(source, filename, "exec", dont_inherit=True)
    state._JOB_MODULES.add(name)
    mod = types.ModuleType(name)
    mod.__file__ = filename
    sys.modules[name] = mod
    _note_job_module(name, filename)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    rng_before = _rng_states()
    try:
        exec(code, mod.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    rng_after = _rng_states()
    index_statics(name, mod)  # now, not in the first capture's pause; in a module zygote, for all its children
    # A top level that seeds (or draws from) the global RNGs: their state is the job's from the start, saved in
    # every checkpoint, so a restore does not depend on the top level running again in the restoring process.
    state.TOP_RNG = (rng_before[0] != rng_after[0], _np_changed(rng_before[1], rng_after[1]))
    return mod


def forget_module(name, filename):
    """Undo `load_module` of a module the worker ran for itself (a fresh child's warm-up run, before it says it
    is ready): the job finds no trace of it, in `sys.modules`, the runtime's tables or `linecache`."""
    sys.modules.pop(name, None)
    for mark in (_LIBS[2], _EXTERN_MARK[0]):  # taken while it was loaded: else the next look walks all modules
        if mark is not None:
            mark.forget(name)
    state._JOB_MODULES.discard(name)
    _forget_job_module(name, filename)
    linecache.cache.pop(filename, None)
    state.TOP_RNG = (False, False)


def lift_preload():
    """Set a module zygote's preloaded job module aside for the child's warm-up run (`put_preload` puts it back),
    with what its top level did to the RNGs; in another worker, nothing to set aside."""
    kept = (state.PRELOADED, state.TOP_RNG)
    state.PRELOADED = None
    return kept


def put_preload(kept):
    state.PRELOADED, state.TOP_RNG = kept


def preload_module(name, filename, source):
    """A module zygote's load: the job's module executed once, before any fork; its children serve restores
    of this identical source only (`load_module`)."""
    mod = load_module(name, filename, source)
    state.PRELOADED = (name, filename, source)
    _analyse_module_code(name)
    return mod


def import_for_forks(names, known_only=False):
    """A set or module zygote imports modules its children imported again each (a restore's imports, a
    request's lazy ones: pandas' reshape module, PIL's image plugins), before its next fork. Returns how many it
    imported and the names that did not import (never tried again). The caller warms again (`warm`).

    `known_only` (a set zygote, which serves the jobs of every client whose checkpoints name its set, where a
    module zygote serves one module's): only the standard library's modules and those of packages it has
    imported already; the names come from a job's worker."""
    import importlib

    imported, failed = 0, []
    for name in names:
        if name in sys.modules:
            continue
        top = name.partition(".")[0]
        if known_only and top not in sys.modules and top not in sys.stdlib_module_names:
            failed.append(name)
            continue
        try:
            importlib.import_module(name)
            imported += 1
        except BaseException:  # a module's import may exit or raise anything: the zygote goes on
            failed.append(name)
    return imported, failed


def _analyse_module_code(name):
    """Build the job module's code index, and the analysis and hash of each of its code objects, once, in the
    module zygote before it forks: every child restores and captures frames of this module, and would otherwise
    do all three again (a warm session's restore in the worker: ~0.3 ms of its ~1.2 ms, docs/BENCHMARKS.md)."""
    for codes in (_index_module(name) or {}).values():
        for c in codes:
            code_info(c)
            code_hash(c)


def start(mod, entry, input_json):
    """Resolve the entry function and decode the input. Returns (function, argument)."""
    f = getattr(mod, entry, None)
    if f is None or not callable(f):
        raise LookupError(f"module has no function {entry!r}")
    arg = json.loads(input_json)
    bind_input(arg, input_json)
    state.JOB = state._Job(mod)
    state.JOB.rng_owned, state.JOB.nprng_owned = state.TOP_RNG
    # The libraries the job's module imported, indexed as they stand right after the import: names a library
    # binds later, while the job runs, exist in no other process and must not become references.
    _index_externs(skip=(mod.__name__,))
    return f, arg


def begin_restored():
    """Called once a restored job is about to continue."""


def encode_output(value):
    if isinstance(value, types.GeneratorType):
        raise TypeError("the job's function returned a generator; return a JSON-serializable value")
    return json.dumps(value)


def format_exception(e, tb=None):
    return "".join(traceback.format_exception(type(e), e, tb if tb is not None else e.__traceback__))


def finish():
    state.JOB = None
    unbind_input()
