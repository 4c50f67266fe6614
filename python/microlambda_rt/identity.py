"""Code identity: code objects are saved by reference (module, qualified name, first line, hash) wherever they
can be found again from their module, so a restore against changed code fails clearly.

Owns the caches ``_CODE_HASH``, ``_FILE_MODULE`` and ``_MODULE_INDEX``.
"""

import hashlib
import sys
import types

from .base import RestoreError, module_items, modules_since

_CODE_HASH = {}


def code_hash(code):
    h = _CODE_HASH.get(code)
    if h is not None and h[0] is code:
        return h[1]
    d = hashlib.blake2b(digest_size=8)

    def feed(c):
        d.update(c.co_code)
        d.update(repr((c.co_names, c.co_varnames, c.co_cellvars, c.co_freevars, c.co_argcount,
                       c.co_kwonlyargcount, c.co_posonlyargcount, c.co_flags, c.co_qualname)).encode())
        for k in c.co_consts:
            if type(k) is types.CodeType:
                feed(k)
            else:
                d.update(repr(k).encode())

    feed(code)
    v = d.hexdigest()
    _CODE_HASH[code] = (code, v)
    return v


_FILE_MODULE = {}  # co_filename -> module name
_FILE_MISS = {}  # co_filename of no module -> len(sys.modules) when it was last looked for
_NOTED = [None]  # the names in sys.modules when their files were noted (`_note_loaded_modules`)
# module name -> (module, {(qualname, firstlineno): [code, ...]}, number of module globals when indexed)
_MODULE_INDEX = {}


def _module_of_code(code):
    fn = code.co_filename
    name = _FILE_MODULE.get(fn)
    if name is None:
        # Code compiled from a string (networkx's argmap wrappers, a lambda made by eval) has a file of no
        # module: every module is scanned again only when modules were imported since the last look.
        n = len(sys.modules)
        if _FILE_MISS.get(fn) == n:
            return None
        for mname, m in module_items(modules_since(_NOTED[0])):
            f = getattr(m, "__file__", None)
            if f and f not in _FILE_MODULE:
                _FILE_MODULE[f] = mname
        name = _FILE_MODULE.get(fn)
        if name is None:
            _FILE_MISS[fn] = n
    return name


def _note_loaded_modules():
    """Map the files of every module loaded so far to their modules (once, when the worker warms up: a miss
    then looks at the modules imported since only, see ``base.modules_since``)."""
    for mname, m in list(sys.modules.items()):
        f = getattr(m, "__file__", None)
        if f:
            _FILE_MODULE.setdefault(f, mname)
    _NOTED[0] = frozenset(sys.modules)


def _note_job_module(name, filename):
    """A job's module is being (re)loaded from `filename`: its code is found there, its old index is stale."""
    _FILE_MODULE[filename] = name
    _MODULE_INDEX.pop(name, None)


def _forget_job_module(name, filename):
    """A job module is dropped (`job.forget_module`): its file and index go with it."""
    if _FILE_MODULE.get(filename) == name:
        del _FILE_MODULE[filename]
    _MODULE_INDEX.pop(name, None)


def _index_module(name):
    mod = sys.modules.get(name)
    if mod is None:
        return None
    cached = _MODULE_INDEX.get(name)
    if cached is not None and cached[0] is mod:
        return cached[1]
    return _build_index(name, mod)


def index_modules(names):
    """Build the code index of these modules (those imported here), as a zygote does before it forks."""
    for n in names:
        if n in sys.modules:
            _index_module(n)


def _build_index(name, mod):
    idx = {}
    seen = set()

    def add_code(c):
        if id(c) in seen:
            return
        seen.add(id(c))
        idx.setdefault((c.co_qualname, c.co_firstlineno), []).append(c)
        for k in c.co_consts:
            if type(k) is types.CodeType:
                add_code(k)

    def add_obj(o, depth):
        if isinstance(o, (staticmethod, classmethod)):
            o = o.__func__
        elif isinstance(o, property):
            for f in (o.fget, o.fset, o.fdel):
                if f is not None:
                    add_obj(f, depth)
            return
        c = getattr(o, "__code__", None)
        if type(c) is types.CodeType:
            add_code(c)
        elif isinstance(o, type) and depth < 4 and getattr(o, "__module__", None) == name:
            for v in list(vars(o).values()):
                add_obj(v, depth + 1)

    names = list(vars(mod).values())
    for v in names:
        add_obj(v, 0)
    _MODULE_INDEX[name] = (mod, idx, len(names))
    return idx


def _code_ref(code):
    """(module, qualname, firstlineno, hash) when the code can be found again from its module, else None."""
    name = _module_of_code(code)
    if name is None:
        return None
    idx = _index_module(name)
    if idx is None:
        return None
    cands = idx.get((code.co_qualname, code.co_firstlineno))
    if not cands or not any(c is code for c in cands):
        # Not reachable from the module's globals (a closure's code, a function made at run time): indexed
        # again only if the module has gained or lost globals since (a whole-module walk costs milliseconds).
        mod, _, n = _MODULE_INDEX[name]
        if len(vars(mod)) == n:
            return None
        idx = _build_index(name, mod)
        cands = idx.get((code.co_qualname, code.co_firstlineno))
        if not cands or not any(c is code for c in cands):
            return None
    return (name, code.co_qualname, code.co_firstlineno, code_hash(code))


def _lookup_code(module, qualname, firstlineno, h):
    if module not in sys.modules:
        try:
            __import__(module)
        except Exception as e:
            raise RestoreError(f"module {module!r} of a checkpointed frame cannot be imported: {e}") from None
    idx = _index_module(module) or {}
    for c in idx.get((qualname, firstlineno), ()):
        if code_hash(c) == h:
            return c
    raise RestoreError(
        f"the code of {module}.{qualname} (line {firstlineno}) differs from the checkpoint's: "
        "the job's code changed since the checkpoint was taken"
    )
