"""microlambda runtime: the Python half of the checkpoint engine (CPython 3.11 only).

The worker binary embeds this package file by file and registers it as ``microlambda_rt`` (``src/py/interp.rs``).
The Rust half (``src/py``) triggers a checkpoint, and in a trace event walks the interpreter frames of the
running job; it hands :func:`capture` one ``RawFrame`` per frame, innermost first. The package decides whether
that instant can be resumed, and pickles the job's state: its frames (code reference, resume point, locals,
value stack), the mutable globals of the job's own module, generator objects, the handled exception and RNG
state.

On restore, each frame is rebuilt as a *morph*: the frame's own code with a prologue prepended that reloads the
locals and the value stack, calls the next inner morph where the frame was suspended in a call, and jumps to the
instruction where the frame stopped. Relative jumps are unchanged by prepending; the exception table and the
location table are re-encoded; a marker constant (``analysis._MorphInfo``) lets a later checkpoint of a restored
run map morph offsets back to the original code, so checkpoints chain.

Modules, bottom-up (each imports only those above it):

- ``base``: the NULL stack marker, the exceptions the worker tells apart, ``_mlrs``, ``ML_DEBUG``.
- ``ops``: the 3.11 opcodes and flags.
- ``analysis``: instruction boundaries, stack depths and saved-``lasti`` slots of a code object.
- ``tables``: the exception-table and location-table encoders.
- ``morph``: morph templates and the functions that run them.
- ``trampolines``: resuming through C that only forwards a call (``__call__``, ``__init__``, descriptors...).
- ``identity``: code hashes and code references (module, qualified name, first line, hash).
- ``views``: reducers for live views (dict views and iterators, memoryviews, matches, numpy views).
- ``cyfields``: Cython's typed memoryviews, memoryviews and arrays, as the objects they view (cdef classes' fields).
- ``files``: where a text file a ``for`` loop reads is, and a ``csv.reader`` between records (C fields, checked).
- ``state``: the job being run.
- ``pickler``: the pickler and the reconstruction helpers its pickles name; the extern index.
- ``capture``, ``restore``: the two halves of a checkpoint.
- ``job``: load a job's module, start it, encode its result, finish it; warm the worker.

Version-specific knowledge lives in ``ops``, ``analysis``, ``tables`` and ``morph`` here and in
``src/py/frame311.rs``; nothing else in microlambda depends on the CPython frame layout.
"""

# What the Rust half calls or reads (src/py: `getattr` on this module).
from .base import NULL, CheckpointError, NotResumable, RestoreError
from .capture import capture
from .job import (
    begin_restored, encode_output, finish, forget_module, format_exception, import_for_forks, lift_preload, load_module,
    preload_module, put_preload, start, warm,
)
from .restore import indexed_modules, restore, restored_imports

# Checkpoints made before the runtime was a package name their reconstruction helpers as
# `microlambda_rt.<name>`; these aliases keep them restorable. New checkpoints name the defining module.
from .identity import _lookup_code, index_modules  # noqa: F401
from .pickler import (  # noqa: F401
    _EMPTY_CELL, _cell_set, _exhausted_gen, _extern, _function_setstate, _gen_setstate, _make_cell,
    _make_created_gen, _make_exception, _make_function, _make_gen,
)
from .views import _dict_iter, _dict_view, _make_memoryview, _np_view, _remake_match  # noqa: F401

__all__ = [
    "NULL", "CheckpointError", "NotResumable", "RestoreError", "begin_restored", "capture", "encode_output",
    "finish", "forget_module", "format_exception", "lift_preload", "load_module", "put_preload", "preload_module",
    "restore", "restored_imports", "start", "warm", "index_modules", "indexed_modules", "import_for_forks",
]
