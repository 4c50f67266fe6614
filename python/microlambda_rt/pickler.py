"""The pickler of a job's state and the reconstruction helpers its pickles name.

Custom reducers for code (by reference), cells, functions of the job's modules, exceptions (with cause,
context and notes), generators (as morph shells filled during restore) and objects owned by library modules
(by reference, from the extern index). Every helper a pickle names must stay importable by module and name.
Owns ``_EXTERN`` (the extern index) and ``_SHELLS`` (generator shells while a restore is in progress).

Size: one reducer table and the helpers its pickles name, kept in one module because a pickle names each
helper by module and name: moving one to another module breaks every checkpoint already written.
"""

import abc
import collections
import contextvars
import copyreg
import functools
import gc
import hashlib
import importlib
import io
import itertools
import json
import operator
import os
import pickle
import stat
import sys
import time
import types
import weakref

import cloudpickle

from .analysis import _MorphInfo, _origin, code_info
from .base import _DEBUG, NULL, NotResumable, RestoreError, _rs, module_items, modules_since
from .cyfields import reducer as cython_reducer
from .identity import _code_ref, _lookup_code
from .morph import (
    K_GEN_CREATED, K_GEN_RUNNING, K_GEN_SUSPENDED, _closure_of, _fix_lasti, _morph_function, _Morph,
    _shift_marks, _template,
)
from .ops import (
    _CACHES, CALL, GEN_CREATED, LOAD_CONST, PRECALL, PUSH_NULL, RAISE_VARARGS, RESUME, RETURN_GENERATOR, RETURN_VALUE,
    YIELD_VALUE,
)
from .state import _JOB_MODULES, ModuleMark, _static_names
from .refs import REFS, WHOLE, library_reducer
from .views import (
    _DICT_ITERS, _LIVE, _dict_iter, _library_dict_iter, _reduce_ndarray, _reduce_void, _same_item, _state_in_dict,
)

_PACKAGE = __name__.rpartition(".")[0]  # the runtime's own modules hold no job state: never externs


def _make_cell():
    return types.CellType()


def _job_cell(module, qualname, path):
    """A closure cell of a function the job's module defines (`qualname`), as the module made it again on
    restore: `path` indexes its closure, then the closure of the function a cell holds, and so on. A cell the
    job held at the checkpoint is that one, so the function, the frames and closures sharing it share it still
    (a decorator's `nonlocal` counter; singledispatch's registry, in the closure of the function its wrapper
    holds)."""
    o = sys.modules.get(module)
    for part in qualname.split("."):
        o = getattr(o, part, None)
    for n, i in enumerate(path):
        closure = getattr(o, "__closure__", None)
        if closure is None or i >= len(closure):
            raise RestoreError(f"function {qualname} of the job's module no longer has the closure it was saved with")
        if n == len(path) - 1:
            return closure[i]
        try:
            o = closure[i].cell_contents
        except ValueError:
            o = None


def _cell_fill(cell, state):
    """Set a cell's contents from ``(contents,)``: pickle calls no state setter for a state of None, so a cell
    holding None was restored empty (an UnboundLocalError after the restore)."""
    _cell_set(cell, state[0])


def _cell_set(cell, state):  # checkpoints made before _cell_fill (they lose a None held in a cell)
    if state is not _EMPTY_CELL:
        cell.cell_contents = state


class _AbcRegistered:
    """The virtual subclasses registered with an ABC of the job's module (`Base.register(Plain)`), saved in
    place of its C-level `_abc_impl`: the restore registers each again with the class the module makes."""

    __slots__ = ("classes",)

    def __init__(self, classes):
        self.classes = tuple(classes)

    def __reduce__(self):
        return _AbcRegistered, (self.classes,)


class _EmptyCell:
    __slots__ = ()

    def __reduce__(self):
        return "_EMPTY_CELL"


_EMPTY_CELL = _EmptyCell()


def _make_function(code, module, name, qualname, closure):
    g = sys.modules[module].__dict__
    f = types.FunctionType(code, g, name, None, closure)
    f.__qualname__ = qualname
    return f


def _function_setstate(f, state):
    defaults, kwdefaults, fdict, annotations, doc, modname = state[:6]
    if len(state) > 6 and state[6]:  # what dynamic code needs from its module (absent from older checkpoints)
        _bind_globals(f.__globals__["__name__"], state[6])
    f.__defaults__ = defaults
    f.__kwdefaults__ = kwdefaults
    if fdict:
        f.__dict__.update(fdict)
    if annotations:
        f.__annotations__ = annotations
    f.__doc__ = doc
    f.__module__ = modname


# Descriptors of C types (`type.__dict__['__dict__']`, slot wrappers, method descriptors) are what their class's
# dict holds under their name. Their own __reduce__ is `getattr(owner, name)`, which runs the descriptor instead:
# `inspect.getattr_static` holding `type.__dict__['__dict__']` came back as a mappingproxy.
_C_DESCRIPTORS = frozenset((types.GetSetDescriptorType, types.MemberDescriptorType, types.WrapperDescriptorType,
                            types.MethodDescriptorType, types.ClassMethodDescriptorType))


def _class_entry(d):
    owner, name = d.__objclass__, d.__name__
    if vars(owner).get(name) is not d:
        raise TypeError(f"cannot pickle {d!r}: it is not what {owner.__qualname__}.__dict__[{name!r}] holds")
    return _class_dict_get, (owner, name)


def _class_dict_get(owner, name):
    return vars(owner)[name]


# Unpickling sets an instance's state through `getattr(inst, "__setstate__")`, which on a class with a Python
# __getattr__ and no __setstate__ calls __getattr__ (a class answering every name gave an int to call). Such
# instances are rebuilt as pickle's default does, with their state set directly.
_PLAIN_REDUCE = (object.__reduce_ex__, object.__reduce__)


def _lookup(t, name):
    for k in t.__mro__:
        if name in k.__dict__:
            return k.__dict__[name]
    return None


def _permissive_getattr(t):
    if not issubclass(t, type) and isinstance(_lookup(t, "__getattr__"), types.FunctionType) and \
            _lookup(t, "__setstate__") is None and \
            _lookup(t, "__reduce_ex__") is _PLAIN_REDUCE[0] and _lookup(t, "__reduce__") is _PLAIN_REDUCE[1]:
        return True
    return False


def _pickles_itself(t):
    """Whether a class gives its instances' state its own way (__reduce__, __reduce_ex__, __getstate__)."""
    return _lookup(t, "__reduce_ex__") is not _PLAIN_REDUCE[0] or _lookup(t, "__reduce__") is not _PLAIN_REDUCE[1] \
        or _lookup(t, "__getstate__") is not object.__dict__["__getstate__"]


def _new_takes_arguments(t):
    """Whether a plain Python class has a __new__ of its own and no way to tell pickle what to give it: pickle's
    default rebuilds instances by calling `cls.__new__(cls)` with no arguments, which `numpy.finfo.__new__(cls,
    dtype)` refused at restore; on a str, int or tuple subclass it passes only the value its base gives
    (`__getnewargs__`), which matplotlib's `FontPath.__new__(cls, path, face_index)` refused and which any
    `__new__` of such a subclass may take otherwise than as its value. Such instances are rebuilt bare, or from
    their base's value, and given their whole state (`_rebuild_of`)."""
    new = _lookup(t, "__new__")
    if not isinstance(new, staticmethod) or type(new.__func__) is not types.FunctionType or \
            issubclass(t, BaseException) or _pickles_itself(t):
        return False
    base = next(b for b in t.__mro__ if isinstance(b.__dict__.get("__new__"), types.BuiltinFunctionType))
    if base is not object and base not in _VALUE_BASES:
        return False
    for name in ("__getnewargs__", "__getnewargs_ex__"):  # a class's own says what its __new__ takes
        g = _lookup(t, name)
        if g is not None and g is not base.__dict__.get(name):
            return False
    if base is not object:
        # Pickle would call it on the base's value, which it need not take as such: a tuple subclass building
        # itself from `n` (`Sieve(n)`, primes below n) failed to restore with a TypeError, and a str subclass
        # changing its argument (`Shout("hi")`, "HI!") came back changed again ("HI!!").
        return True
    code, defaults = new.__func__.__code__, new.__func__.__defaults__ or ()
    # `cls.__new__(cls)` works (numpy's _NoValue: it is a singleton).
    return code.co_argcount - len(defaults) > 1


# Immutable builtins whose value a subclass instance is made from (their own `__getnewargs__` gives it).
_VALUE_BASES = (str, bytes, int, float, complex, tuple)


def _rebuild_of(obj):
    """How `_reduce_plain_instance` makes an instance before setting its state: pickle's default (`__newobj__`,
    which calls the class's own __new__), or, when that __new__ takes arguments pickle cannot give, bare (an
    object) or from its base's value (a str or tuple subclass)."""
    t = type(obj)
    if not _new_takes_arguments(t):
        new = _lookup(t, "__new__")
        if isinstance(new, staticmethod) and type(new.__func__) is types.FunctionType and _no_c_state(t):
            # A __new__ of its own that may be called bare and still refuse (pandas' RangeIndex.__new__ takes
            # only defaults and raises without integers: a RangeIndex saved half-built inside its _simple_new
            # failed to restore).
            return _new_or_bare, (t,)
        return copyreg.__newobj__, (t,)
    base = next(b for b in t.__mro__ if isinstance(b.__dict__.get("__new__"), types.BuiltinFunctionType))
    if base is object:
        return _bare, (t,)
    return _from_value, (t, base, base.__dict__["__getnewargs__"](obj))


def _own_reducer(t):
    """Whether a plain Python class pickles its instances its own way (__reduce__, __reduce_ex__, __getstate__,
    __setstate__).
    Such a reducer is written for objects at rest, and not for all of them: an object holding an open file is
    always saved with its whole state (`_holds_open_file`), and one in the middle of one of its methods with the
    state it has when its reducer cannot give it (`_busy_own_reduce`)."""
    own = _OWN_REDUCER.get(t)
    if own is None:
        plain = _lookup(t, "__new__") is object.__dict__["__new__"] and not issubclass(t, BaseException)
        own = plain and (_pickles_itself(t) or _lookup(t, "__setstate__") is not None)
        _OWN_REDUCER[t] = own
    return own


_OWN_REDUCER = {}


def _holds_open_file(obj):
    """Whether an object's attributes hold an open file. Such an object is saved with its whole state (the file
    saved as where it is read), busy or at rest, never through its own pickling: that pickling either drops the
    file (a PIL image in the middle of load() resumed without it) or reads it to make the state, a side effect
    on the live job at capture (a PIL image opened lazily was decoded in full by its __getstate__, and the job's
    own draft() call, which only works before decoding, then did nothing: the resumed and the live job both went
    on with a full-size image). Other busy objects keep their own reducer (PIL's decoded image data survives it).

    Asked of every instance of such a class the state holds (a pandas frame and its indexes), for each attribute:
    whether the attribute's type is a file type is looked up per type (`_FILE_TYPES`), not asked of the ABC each
    time (under cProfile, `isinstance(v, io.IOBase)` was a fifth of the time a list of small DataFrames took to
    pickle)."""
    d = getattr(obj, "__dict__", None)
    if not isinstance(d, dict):
        return False
    token = abc.get_cache_token()
    if _FILE_TYPES.get(None) != token:  # a class was registered with an ABC since: io.IOBase's may have grown
        _FILE_TYPES.clear()
        _FILE_TYPES[None] = token
    for v in list(d.values()):
        t = type(v)
        f = _FILE_TYPES.get(t)
        if f is None:
            f = _FILE_TYPES[t] = issubclass(t, io.IOBase)
        if not f and v.__class__ is not t:  # a proxy (say): its __class__ decides, as isinstance() would ask it
            f = isinstance(v, io.IOBase)
        if f and not v.closed:
            return True
    return False


_FILE_TYPES = {}  # type -> whether it is io.IOBase's; under None, the ABC cache token the entries hold for


# Regular files opened for reading are saved as where they are read: path, mode, position and the file's size
# and modification time, and opened again there on restore (a changed or missing file is refused). A text file
# keeps the newline it was opened with and the line endings it has met (`f.newlines`); its position is found
# even while a `for` loop reads it, where tell() refuses (files.py). Anything else (files opened for writing,
# pipes, sockets) cannot be saved: the engine waits, then names it.
def _reduce_reader(f):
    import io

    from . import files

    std = _standard_stream(f)
    if std is not None:
        return _std_stream, std
    raw = f.buffer.raw if isinstance(f, io.TextIOWrapper) else (f.raw if isinstance(f, io.BufferedReader) else f)
    name = getattr(raw, "name", None)
    if f.closed and type(raw) is io.FileIO and isinstance(name, str):  # only what it shows matters
        text = (f.__dict__.get("mode"), f.encoding, f.errors) if isinstance(f, io.TextIOWrapper) else None
        layer = type(f.buffer) if text else (type(f) if f is not raw else None)
        return _closed_file_like, (name, raw.mode, layer, text)
    if f.closed or type(raw) is not io.FileIO or not isinstance(name, str) or raw.mode != "rb":
        raise TypeError(f"cannot pickle {type(f).__name__} {name!r}: only regular files open for reading are saved")
    st = os.stat(raw.fileno())
    if not stat.S_ISREG(st.st_mode) or os.path.realpath(name).startswith(("/proc/", "/sys/", "/dev/")):
        raise TypeError(f"cannot pickle {type(f).__name__} {name!r}: not a regular file")
    path = os.path.realpath(name) if not os.path.isabs(name) else name
    if isinstance(f, io.TextIOWrapper):
        opts = ("r", f.encoding, f.errors, files.text_newline(f))
        pos = files.text_position(f, path, opts)
        chunk = f._CHUNK_SIZE if f._CHUNK_SIZE != 8192 else None  # the size it reads and decodes at a time
        if f.newlines is not None or chunk is not None:
            return _reopen, (path, opts, pos, (st.st_size, st.st_mtime_ns), f.newlines, chunk)
    else:
        opts = ("rb" if isinstance(f, io.BufferedReader) else "rb-raw", None, None, None)
        pos = f.tell()
    return _reopen, (path, opts, pos, (st.st_size, st.st_mtime_ns))


def _standard_stream(f):
    """(name, layer) when `f` is the process's standard input, output or error stream (`sys.__stderr__`, its
    `.buffer` or its raw file): what a logging `StreamHandler` or a job's `out = sys.stdout` holds. Such a stream is
    the process's, not the job's: it is saved by name and restored as the restoring process's own."""
    for name in ("stdin", "stdout", "stderr"):
        s = getattr(sys, f"__{name}__", None)
        if s is None:
            continue
        if f is s:
            return name, None
        b = getattr(s, "buffer", None)
        if b is not None and f is b:
            return name, "buffer"
        if b is not None and f is getattr(b, "raw", None):
            return name, "raw"
    return None


def _std_stream(name, layer):
    s = getattr(sys, f"__{name}__")
    if layer is None:
        return s
    return s.buffer if layer == "buffer" else getattr(s.buffer, "raw", s.buffer)  # unbuffered: no layer between


def _reopen(path, opts, pos, ident, newlines=None, chunk=None):
    mode, encoding, errors, newline = opts
    try:
        st = os.stat(path)
    except OSError as e:
        raise RestoreError(f"the job's open file {path!r} cannot be opened again: {e}") from None
    if (st.st_size, st.st_mtime_ns) != tuple(ident):
        raise RestoreError(f"the job's open file {path!r} changed since the checkpoint")
    if mode == "r":
        f = open(path, "r", encoding=encoding, errors=errors, newline=newline)
    else:
        f = open(path, "rb", buffering=0 if mode == "rb-raw" else -1)
    f.seek(pos)
    if chunk is not None:
        f._CHUNK_SIZE = chunk
    if newlines is not None:
        from .files import FileStateError, set_newlines_seen

        try:
            set_newlines_seen(f, newlines)
        except FileStateError as e:
            raise RestoreError(f"the job's open file {path!r}: {e}") from None
    return f


def _closed_file(name, text):
    """A closed file, made by checkpoints of an engine that gave it back as a closed StringIO or BytesIO."""
    import io

    f = io.StringIO() if text else io.BytesIO()
    f.close()
    return f


def _closed_file_like(name, raw_mode, layer, text):
    """A closed file of the type, name and modes the job's was (a file written and closed in a `with` block,
    whose variable lives on): made on the null device and closed, so that using it raises ValueError as the
    original would. A closed StringIO stood in for it before: no `name`, and the next capture, which cannot
    pickle a closed StringIO, refused every checkpoint until the variable went."""
    import io

    raw = io.FileIO(os.devnull, raw_mode.replace("x", "w"))  # the null device exists: exclusive creation fails
    raw.name = name
    f = raw if layer is None else layer(raw)
    if text is not None:
        mode, encoding, errors = text
        f = io.TextIOWrapper(f, encoding=encoding, errors=errors)
        if mode is not None:
            f.mode = mode
    f.close()
    return f


def _reduce_memory_file(f):
    """A StringIO or BytesIO: its own pickling, but a closed one (`s.close()` after `getvalue()`) has none."""
    if not f.closed:
        return NotImplemented
    return _closed_memory_file, (type(f),)


def _closed_memory_file(t):
    f = t()
    f.close()
    return f


def _open_file_types():
    import io

    return {**{t: _reduce_reader for t in (io.BufferedReader, io.BufferedWriter, io.TextIOWrapper, io.FileIO)},
            io.StringIO: _reduce_memory_file, io.BytesIO: _reduce_memory_file}


_OPEN_FILES = _open_file_types()


# Locks. A checkpoint is only taken of a job that runs no other Python thread, so a held lock is held by the job
# thread itself (or was left acquired, as a one-shot signal): a lock is saved as whether it is held, and an
# RLock as how many times the job thread holds it, and each is made again in that state, held by the restoring
# job thread. A lock the job's libraries keep in a module is saved by reference, as the module's other objects
# (this is the last resort of `_handler_for`): scikit-learn's `Parallel` and its forests' `predict_proba` hold
# one in a local variable, which made every instant of theirs wait.
def _save_lock(self, lock):
    return _make_lock, (lock.locked(),)


def _make_lock(held):
    import _thread

    lock = _thread.allocate_lock()
    if held:
        lock.acquire()
    return lock


def _save_rlock(self, lock):
    count = 0
    if lock._is_owned():
        state = lock._release_save()  # (count, owner): let go and take back at once, as Condition.wait does
        lock._acquire_restore(state)
        count = state[0]
    elif "<locked " in repr(lock):
        raise TypeError("cannot pickle an RLock held by another thread")
    return _make_rlock, (count,)


def _make_rlock(count):
    import _thread

    lock = _thread.RLock()
    for _ in range(count):
        lock.acquire()
    return lock


def _lock_types():
    import _thread

    return {_thread.LockType: _save_lock, _thread.RLock: _save_rlock}


_LOCKS = _lock_types()
_RLOCK = type(__import__("_thread").RLock())


# Extension types whose pickling keeps their whole state (the builtin containers and scalars).
_FAITHFUL_C_BASES = (object, dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bytearray,
                     BaseException, collections.OrderedDict, collections.defaultdict, collections.deque)


def _c_state_reducer(t):
    """Whether instances of `t` keep state in C fields of an extension type (a Cython or C class, not a builtin
    container) that pickles them its own way. Such a reducer is written for objects at rest and may drop what a
    method in progress relies on (pandas' BlockManager, rebuilt by its constructor, forgot the `_blknos` its
    own `blknos` property had just computed and was about to return), and their C state cannot be saved any
    other way: an instant with one in the middle of its own method is waited out."""
    hit = _C_STATE.get(t)
    if hit is None:
        hit = False
        if _whole_c_state_pickled(t):
            _C_STATE[t] = hit
            return hit
        for b in t.__mro__:  # the nearest class with a C-level __new__: the extension type instances are of
            if isinstance(b.__dict__.get("__new__"), types.BuiltinFunctionType):
                hit = b not in _FAITHFUL_C_BASES and not issubclass(b, BaseException) and _pickles_itself(t) \
                    and not _cython_auto_pickle(t)
                break
        _C_STATE[t] = hit
    return hit


_C_STATE = {}


def _whole_c_state_pickled(t):
    """Whether `t` pickles through `random.Random`'s own methods, unchanged: its state is the generator's whole
    C state (the Mersenne Twister's words and position) and the pending Gaussian, read by `getstate()` at any
    instant, so an instance in the middle of one of its Python methods (`choice`, `shuffle`, `expovariate`) is
    saved exactly. A job's own `random.Random(seed)` was waited out whenever a request landed in one."""
    import random

    if not issubclass(t, random.Random):
        return False
    return all(_lookup(t, name) is random.Random.__dict__[name] for name in ("__reduce__", "__setstate__", "getstate",
                                                                          "setstate"))


def _reduce_random(r):
    """A subclass of `random.Random` as its class, the generator's state and its own attributes. Random's own
    `__reduce__` gives `(cls, (), getstate())`: a subclass whose `__init__` takes arguments failed to restore
    (`Biased.__init__() missing 2 required positional arguments`), and the attributes of one (`self.bias`) were
    dropped."""
    import random

    t = type(r)
    d = getattr(r, "__dict__", None)
    slots = {}
    for name in copyreg._slotnames(t):
        if name not in ("__dict__", "__weakref__"):
            try:
                slots[name] = object.__getattribute__(r, name)
            except AttributeError:
                pass
    return _make_random, (t,), (random.Random.getstate(r), dict(d) if d else None, slots or None), None, None, \
        _set_random


def _make_random(t):
    """A bare instance of a `random.Random` subclass (its own `__init__` not run: its state is set next)."""
    import _random

    return _random.Random.__new__(t)


def _set_random(r, state):
    import random

    st, d, slots = state
    random.Random.setstate(r, st)
    _set_state(r, (d, slots))


def _cython_auto_pickle(t):
    """Whether `t` pickles through the reducer Cython generates for a cdef class (`__reduce_cython__`), which
    saves every C field and the instance's __dict__ (Cython generates none when a field cannot be pickled): the
    whole state, as faithful in the middle of a method as at rest (pandas' extension arrays)."""
    r = _lookup(t, "__reduce__")
    return getattr(r, "__name__", None) == "__reduce_cython__" and _lookup(t, "__reduce_ex__") is _PLAIN_REDUCE[0] \
        and _lookup(t, "__getstate__") is object.__dict__["__getstate__"]


def _no_c_state(t):
    """Whether instances of `t` keep all their state in their __dict__ and slots: the nearest class of its MRO
    with a C-level __new__ is object itself."""
    for b in t.__mro__:
        if isinstance(b.__dict__.get("__new__"), types.BuiltinFunctionType):
            return b is object
    return False



def _busy_own_reduce(obj):
    """The reduction an object in the middle of one of its own methods gives of itself, or None when it cannot
    give one: a half-built object (networkx's AtlasView inside its __init__, before it set the slot its
    __getstate__ reads) is then saved with the state it has, which its resumed method completes. A class that
    only sets its state its own way (__setstate__) is given that state directly: scipy's coo_matrix, saved inside
    its __init__, had no `coords` yet, and its __setstate__ failed on the partial state."""
    if not _pickles_itself(type(obj)):
        return _reduce_plain_instance(obj)
    try:
        r = obj.__reduce_ex__(5)
    except Exception:
        return _reduce_plain_instance(obj)
    if not isinstance(r, tuple) or len(r) > 5 and r[5] is not None:
        return None
    r = r + (None,) * (5 - len(r))
    d = getattr(obj, "__dict__", None)
    if not isinstance(d, dict):
        return r
    if isinstance(r[2], dict):
        # A state made from its __dict__: where it left an attribute out or gave it another value (matplotlib's
        # Text.__getstate__ sets `_renderer` to None, and a resumed get_window_extent passed None on), the live
        # value is set back after the class's own __setstate__. One that cannot be saved then makes the instant
        # wait, never a resume without it.
        own = r[2]
        extra = {k: v for k, v in d.items() if own.get(k, _ABSENT) is not v}
        # The live attributes in their order: after __setstate__ the instance's dict is made exactly that (no
        # key its __getstate__ added or its __setstate__ derived, none in another order).
        force = tuple(d)
        if not extra and tuple(own) == force and _lookup(type(obj), "__setstate__") is None:
            return r  # its own state is exactly its dict, set as it is
    else:
        # A state of another shape (PIL's image: a list), which cannot be compared: attributes its method set
        # that such pickling leaves out (Image.save() sets `encoderinfo`, which the resumed PNG encoder read),
        # plain data, set back where the rebuilt object lacks them.
        extra = {k: v for k, v in d.items() if type(v) in _PLAIN_DATA}
        force = False
        if not extra:
            return r
    return r[0], r[1], (r[2], extra, force), r[3], r[4], _set_own_state


_ABSENT = object()


def _held_dicts(obj, *states):
    """The instances other than `obj` that its attribute dicts `states` hold by value (not a library module's own
    objects, which the restoring process has and may register into), each with a copy of its dict as unpickled."""
    out = []
    seen = {id(obj)}
    for st in states:
        for v in st.values():
            if id(v) in seen or id(v) in _EXTERN or isinstance(v, (type, types.ModuleType, types.FunctionType)):
                continue
            seen.add(id(v))
            try:
                vd = object.__getattribute__(v, "__dict__")
            except AttributeError:
                continue
            if type(vd) is dict:
                out.append((v, dict(vd)))
    return out


_PLAIN_DATA = frozenset((int, float, complex, str, bytes, bool, type(None), dict, list, tuple, set, frozenset))


def _set_own_state(obj, state):
    """Set a state the object's class gave of itself, as unpickling does, then the attributes it left out; with
    `force` (the live dict's keys), make the dict exactly the live one, in its order."""
    own, extra, force = state
    kept, held = own, ()
    if own is not None:
        if type(force) is tuple:
            kept = dict(own)  # as saved: a __setstate__ may change the dict it is given (Figure pops a key)
            held = _held_dicts(obj, kept, extra)
        setstate = _lookup(type(obj), "__setstate__")
        if setstate is not None:
            setstate(obj, own)
        else:
            _set_state(obj, own)
    d = obj.__dict__
    if type(force) is tuple:
        live = {k: extra[k] if k in extra else kept[k] for k in force}
        d.clear()
        d.update(live)
        # What its __setstate__ did to the objects it holds is undone: they were saved as they were at the
        # checkpoint (matplotlib's Figure.__setstate__ puts its dpi back to the one it was made with and rescales
        # its dpi transform in place; a savefig resumed mid-draw drew at the old dpi).
        for o, was in held:
            now = o.__dict__
            if len(now) != len(was) or any(now.get(k, _ABSENT) is not v for k, v in was.items()):
                now.clear()
                now.update(was)
        return
    for k, v in extra.items():  # a checkpoint made before the live keys were saved: True or False
        if force or k not in d:
            d[k] = v


# C iterators that cannot pickle themselves, saved from what their traversal visits (CPython 3.11's layout of
# what they hold, checked by the unit tests): itertools.pairwise holds its source iterator and, once started,
# the item it will pair next; exhausted, nothing.
def _reduce_pairwise(p):
    refs = gc.get_referents(p)
    if len(refs) > 2:
        raise TypeError("cannot pickle 'itertools.pairwise' object: unknown layout")
    return _make_pairwise, tuple(refs)


def _make_pairwise(*refs):
    if not refs:
        p = itertools.pairwise(())
        next(p, None)
        return p
    if len(refs) == 1:
        return itertools.pairwise(refs[0])
    return itertools.pairwise(itertools.chain((refs[1],), refs[0]))


def _c_iterator_types():
    return {itertools.pairwise: _reduce_pairwise}


_C_ITERATORS = _c_iterator_types()


def _reduce_plain_instance(obj):
    """An instance as its class and its whole state (``__dict__`` and slots), rebuilt without running any of the
    class's own pickling methods (``__getstate__``, ``__setstate__``, ``__getattr__``)."""
    t = type(obj)
    d = getattr(obj, "__dict__", None)
    slots = {}
    for name in copyreg._slotnames(t):
        if name in ("__dict__", "__weakref__"):
            continue
        try:
            slots[name] = object.__getattribute__(obj, name)
        except AttributeError:
            pass
    state = (dict(d) if d else None, slots or None)
    new = _rebuild_of(obj)
    # The contents of a dict or list subclass are its state too (scipy's OptimizeResult is a dict answering
    # attributes through __getattr__: saved without its items, the resumed job found no `x`).
    items = iter(list.__iter__(obj)) if isinstance(obj, list) else None
    pairs = iter(dict.items(obj)) if isinstance(obj, dict) else None
    return new[0], new[1], state, items, pairs, _set_state


def _bare(t):
    """An instance of a plain Python class made without running its own __new__ (its state is set next)."""
    return object.__new__(t)


def _new_or_bare(t):
    """An instance made by its class's own __new__ called bare, as pickle's default does (a singleton stays
    itself), or without it when that refuses (its state is set next)."""
    try:
        return t.__new__(t)
    except (TypeError, ValueError):
        return object.__new__(t)


def _from_value(t, base, args):
    """An instance of a subclass of a value type made by its base alone, from the value (its state is set next)."""
    return base.__new__(t, *args)


def _set_state(obj, state):
    if state is None:
        return
    d, slots = state if type(state) is tuple else (state, None)
    if d:
        obj.__dict__.update(d)
    for k, v in (slots or {}).items():
        object.__setattr__(obj, k, v)


def _extern(module, attr):
    m = sys.modules.get(module)
    if m is None:
        m = __import__(module, fromlist=["_"])
    try:
        return getattr(m, attr)
    except AttributeError:
        raise RestoreError(f"{module}.{attr}, saved by reference, does not exist here") from None


def _make_exception(cls, args, state, cause, context, suppress, tb_notes, ctor_args=None):
    # Through the constructor with the arguments the class's own __reduce__ gives, as pickle does: C-level
    # fields are set by __init__ (StopIteration.value, OSError.errno and .filename, which OSError keeps out of
    # its args). A class whose __init__ does not take those arguments is built without it. Then the state
    # __reduce__ gave, by attribute, as BaseException.__setstate__ does (ImportError.name and .path are
    # members, not __dict__ entries). `ctor_args` is absent in checkpoints of earlier versions.
    if ctor_args is None:
        ctor_args = args
    try:
        e = cls(*ctor_args)
    except Exception:
        e = cls.__new__(cls, *ctor_args)
    e.args = args
    if state:
        for k, v in state.items():
            try:
                setattr(e, k, v)
            except (AttributeError, TypeError):
                e.__dict__[k] = v
    e.__cause__ = cause
    e.__context__ = context
    e.__suppress_context__ = suppress
    if tb_notes is not None:
        e.__notes__ = tb_notes
    return e


def _make_gen(code, module, qualname, closure, kind, target, slots, mask, call_unit, yield_unit):
    """A generator shell: a morph generator object whose lists are filled (and which is advanced) later. Running
    generators (in the checkpointed chain) are made so; suspended ones by `_make_suspended_gen`, or so in
    checkpoints made before it."""
    info = code_info(code)
    t = _template(info, kind, target, slots, mask, call_unit, yield_unit)
    m = _Morph(info, t)
    fn = _morph_function(m.code, code, module, qualname, closure)
    if kind == K_GEN_CREATED:
        return _GenPending(fn, m)
    g = fn()
    _SHELLS[id(g)] = (g, m, None)
    return g


class _GenPending:
    """A created (never started) generator is made by calling its morph once its locals are known."""

    __slots__ = ("fn", "morph", "gen")

    def __init__(self, fn, morph):
        self.fn, self.morph, self.gen = fn, morph, None


_SHELLS = {}  # id(generator) -> (generator, morph, its _GenShape or None) while a restore is in progress


class _GenShape:
    """What the generators a checkpoint holds suspended at the same yield of the same code (or created and not
    started: `yu` None), with the same bound locals and NULLs on the stack, have in common: written once per
    checkpoint (the pickler's memo), and on restore made into one morph that all of them run. Sharing it is safe
    because a morph's lists are emptied by its own prologue right after they are filled: `_gen_setstate` fills
    and advances a suspended generator in one go, and a created one runs its prologue inside the call that makes
    it. A state can hold thousands of such generators (networkx's maximum flow keeps one per node)."""

    __slots__ = ("code", "module", "yu", "slots", "mask", "marks", "nfree", "shift", "morph", "fns")

    def __init__(self, code, module, yu, slots, mask, marks):
        self.code, self.module, self.yu, self.slots, self.mask, self.marks = code, module, yu, slots, mask, marks
        self.nfree = len(code.co_freevars)
        self.shift = 0  # at capture: the prologue length of the morph the saved generators run, if they do
        self.morph = None
        self.fns = {}  # qualname -> the morph function (generators without free variables)

    def __reduce__(self):
        return _GenShape, (self.code, self.module, self.yu, self.slots, self.mask, self.marks)

    def function(self, qualname, closure):
        """(morph, function) for a generator of this shape: the morph made on first use, the function shared by
        generators with no closure."""
        m = self.morph
        if m is None:
            info = code_info(self.code)
            if self.yu is None:
                retgen = next(i.start for i in info.ops if i.op == RETURN_GENERATOR)
                t = _template(info, K_GEN_CREATED, retgen + 2, self.slots, (), None, retgen)
            else:
                t = _template(info, K_GEN_SUSPENDED, self.yu + 1, self.slots, self.mask, None, self.yu)
            m = self.morph = _Morph(info, t)
        if closure is not None:
            return m, _morph_function(m.code, self.code, self.module, qualname, closure)
        fn = self.fns.get(qualname)
        if fn is None:
            fn = self.fns[qualname] = _morph_function(m.code, self.code, self.module, qualname, None)
        return m, fn


def _make_suspended_gen(shape, qualname, closure):
    """A suspended generator's shell, filled and advanced to its yield by `_gen_setstate`."""
    m, fn = shape.function(qualname, closure)
    g = fn()
    _SHELLS[id(g)] = (g, m, shape)
    return g


def _gen_setstate(g, state):
    _, m, shape = _SHELLS.pop(id(g))
    if shape is None:  # a checkpoint made before `_GenShape`: the marks are in the state
        local_values, stack_values, marks, exc = state
    else:
        local_values, stack_values, exc = state
        marks = shape.marks
    m.fill(local_values, _shift_marks(stack_values, marks, m.shift))
    next(g)  # runs the prologue up to its own yield: the generator now waits where the original did
    if exc is not None:
        _rs.set_gen_exc(g, exc)


def _make_started_later(shape, qualname, closure, local_values):
    """A created (never started) generator: its prologue binds its locals inside the call that makes it."""
    m, fn = shape.function(qualname, closure)
    m.fill(local_values, ())
    return fn()


def _make_created_gen(code, module, qualname, slots, local_values):
    """A created generator as checkpoints made before `_GenShape` save it."""
    return _make_started_later(_GenShape(code, module, None, slots, (), ()), qualname,
                               _closure_of(code, slots, local_values), local_values)


def _exhausted_gen():
    g = (x for x in ())
    for _ in g:
        pass
    return g


# functools.lru_cache wrappers keep their cache and its counters in C: their own pickling is by name, so the
# wrapper the job's module makes again on restore came back empty (a job reading cache_info() diverged, and one
# relying on a cached object's identity would). They are saved with their entries (least recently used first),
# hits and misses, and refilled on restore by calling the wrapper with each entry's arguments while the wrapped
# function's code is, for that moment, one that returns the saved result (so none of the job's code runs).
_LRU = functools._lru_cache_wrapper
_NOT_PLAIN_CODE = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, iterable coroutine, async generator


def _lru_parts(w):
    """(function, kwd_mark, entries as [(key, result)] least recently used first), read from what the wrapper's
    traversal visits: its type, per entry of a bounded cache (key, result, entry type), the cache dict, the
    function, the keyword marker."""
    refs = gc.get_referents(w)
    info = w.cache_info()
    for j, d in enumerate(refs):
        if type(d) is dict and len(d) == info.currsize and j + 2 < len(refs) and type(refs[j + 2]) is object \
                and callable(refs[j + 1]):
            break
    else:
        raise TypeError(f"cannot read the cache of {w!r}")
    func, mark = refs[j + 1], refs[j + 2]
    if info.maxsize is None:
        return func, mark, list(d.items())
    links = refs[1:j]
    if len(links) != 3 * len(d):
        raise TypeError(f"cannot read the cache of {w!r}")
    entries = [(links[i], links[i + 1]) for i in range(0, len(links), 3)]
    if any(k not in d for k, _ in entries):
        raise TypeError(f"cannot read the cache of {w!r}")
    return func, mark, entries


def _lru_args(key, typed, mark):
    """The call (args, kwargs) an lru_cache key was made from (the inverse of C's lru_cache_make_key)."""
    if type(key) is not tuple:
        return (key,), {}
    marked = list(map(operator.is_, key, itertools.repeat(mark)))
    if True not in marked:
        return (key[:len(key) // 2] if typed else key), {}
    i = marked.index(True)
    nkw = (len(key) - 2 * i - 1) // 3 if typed else (len(key) - i - 1) // 2
    kv = key[i + 1:i + 1 + 2 * nkw]
    return key[:i], {kv[n]: kv[n + 1] for n in range(0, len(kv), 2)}


def _lru_state(w):
    """What a wrapper holds, or None when it holds nothing (as the module makes it)."""
    info = w.cache_info()
    if not (info.currsize or info.hits or info.misses):
        return None
    func, mark, entries = _lru_parts(w)
    if type(func) is not types.FunctionType or func.__code__.co_flags & _NOT_PLAIN_CODE:
        raise TypeError(f"cannot save the cache of {w!r}: it wraps a {type(func).__name__}, not a plain function")
    if info.hits and not entries:
        raise TypeError(f"cannot save the cache counters of {w!r}")
    # The keys as they are (the calls they stand for are worked out on restore, off the job's pause), with the
    # keyword marker they hold, which unpickles as one object again.
    return entries, mark, bool(w.cache_parameters()["typed"]), info.hits, info.misses


def _reduce_lru(w):
    state = _lru_state(w)
    mod = sys.modules.get(getattr(w, "__module__", None) or "")
    if _lru_find(mod, getattr(w, "__qualname__", "<>")) is w:
        return _lru_lookup, (w.__module__, w.__qualname__), state, None, None, _lru_setstate
    params = w.cache_parameters()
    return _lru_make, (_lru_parts(w)[0], params["maxsize"], params["typed"]), state, None, None, _lru_setstate


def _lru_find(o, qualname):
    """What a module or class holds at a dotted name, read from the class dicts (not through descriptors)."""
    for part in qualname.split("."):
        o = vars(o).get(part) if isinstance(o, type) else getattr(o, part, None)
        if isinstance(o, (staticmethod, classmethod)):
            o = o.__func__
        if o is None:
            return None
    return o


def _lru_lookup(module, qualname):
    o = _lru_find(sys.modules.get(module) or __import__(module, fromlist=["_"]), qualname)
    if type(o) is not _LRU:
        raise RestoreError(f"{module}.{qualname}, an lru_cache saved by reference, is not one here")
    return o


def _lru_make(func, maxsize, typed):
    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


class _LruMiss(Exception):
    pass


def _stub_code(code, value, raises):
    """`code` (its signature, its free variables) with a body that returns `value()`, or raises `value`."""
    if raises:
        c = [RESUME, 0, LOAD_CONST, 0, RAISE_VARARGS, 1]
    else:
        c = [RESUME, 0, PUSH_NULL, 0, LOAD_CONST, 0, PRECALL, 0] + [0, 0] * _CACHES[PRECALL] + [CALL, 0] + \
            [0, 0] * _CACHES[CALL] + [RETURN_VALUE, 0]
    return code.replace(co_code=bytes(c), co_consts=(value,), co_names=(), co_stacksize=3, co_linetable=b"",
                        co_exceptiontable=b"")


def _lru_setstate(w, state):
    keyed, mark, typed, hits, misses = state
    entries = [(*_lru_args(k, typed, mark), r) for k, r in keyed]
    w.cache_clear()
    func = _lru_parts(w)[0]
    code = func.__code__
    try:
        func.__code__ = _stub_code(code, iter([r for _, _, r in entries]).__next__, False)
        for args, kwargs, _ in entries:
            w(*args, **kwargs)
        func.__code__ = _stub_code(code, _LruMiss(), True)
        for _ in range(misses - len(entries)):  # calls that missed and raised: counted, nothing cached
            try:
                w(_LruMiss())
            except Exception:
                pass
    finally:
        func.__code__ = code
    if hits:
        args, kwargs, _ = entries[-1]  # the most recently used: a hit leaves the order as it is
        for _ in range(hits):
            w(*args, **kwargs)
    info = w.cache_info()
    if (info.hits, info.misses, info.currsize) != (hits, misses, len(entries)):
        raise RestoreError(f"the cache of {w!r} could not be refilled as it was ({info} after the restore; "
                           f"saved: {hits} hits, {misses} misses, {len(entries)} entries)")


_SCALARS = (int, float, complex, str, bytes, bool, type(None))


_EXTERN = {}  # id(obj) -> (module, attr): objects owned by library modules, saved by reference
_EXTERN_SEEN = set()  # modules already indexed
_EXTERN_NMODS = -1  # library modules in sys.modules when last indexed (`_library_module_count`)
_EXTERN_MARK = [None]  # sys.modules when last indexed (a state.ModuleMark): a child of a zygote walks the new ones


def _library_module_count(skip=()):
    """Modules in sys.modules that are not a job's: what `_index_externs` indexes. A job's own module does not
    count, so that loading it does not make every fresh worker walk all of sys.modules again (in a process forked
    from the zygote that walk also touches, hence copies, every module's pages)."""
    jobs = _JOB_MODULES.union(skip)
    return len(sys.modules) - sum(1 for name in jobs if name in sys.modules)


def _index_externs(skip=()):
    """Add the namespaces of modules not indexed yet. Run once when the worker starts (warm) and then only for
    modules imported since, so a checkpoint pays for new imports only. The collector is off meanwhile: the
    index's entries are tuples, tens of thousands with scikit-learn and pandas imported, whose allocations set
    off full collections of a heap of a million objects (a cold restore's `restore: unpickle` with ML_DEBUG,
    17_stress_workload of tests/corpus_libs: 179 ms with the collector on, 83-87 ms off; docs/BENCHMARKS.md)."""
    global _EXTERN_NMODS
    count = _library_module_count(skip)
    if _EXTERN_NMODS == count:
        return
    if _DEBUG:  # which modules a capture or restore indexes (a job's lazy imports: pandas' at every request)
        new = [m for m, _ in module_items(modules_since(_EXTERN_MARK[0])) if m not in _EXTERN_SEEN
               and m not in skip and m not in _JOB_MODULES and m != "__main__" and not m.startswith(_PACKAGE)]
        print(f"index: {_EXTERN_NMODS} -> {count} modules, new {new[:8]}{' ...' if len(new) > 8 else ''}",
              file=sys.stderr)
    _EXTERN_NMODS = count
    collecting = gc.isenabled()
    gc.disable()
    try:
        _index_new_modules(skip)
    finally:
        if collecting:
            gc.enable()


def _index_new_modules(skip):
    """`_index_externs`'s walk of the modules not indexed yet."""
    strs = []
    containers = []
    classes = []
    instances = []
    items = module_items(modules_since(_EXTERN_MARK[0]))
    _EXTERN_MARK[0] = ModuleMark()
    for mname, m in items:
        if mname in _EXTERN_SEEN or mname in skip or mname in _JOB_MODULES or mname == "__main__" \
                or mname == _PACKAGE or mname.startswith(_PACKAGE + "."):
            continue
        _EXTERN_SEEN.add(mname)
        d = getattr(m, "__dict__", None)
        if not isinstance(d, dict):
            continue
        _IMPORT_KEYS[mname] = frozenset(d)
        importable = d.get("__spec__") is not None  # a restore can import it to find its containers
        for k, v in list(d.items()):
            if type(v) is str and not (k.startswith("__") and k.endswith("__")):
                strs.append((mname, k, v))  # kept one object by the pickler's persistent_id (numbers.rs)
            elif type(v) in _MUTABLE_CONTAINERS and importable and type(k) is str:
                containers.append((mname, k, d, v))  # by reference, through persistent_id (libstate.rs)
            elif importable and type(k) is str and isinstance(v, type):
                classes.append((mname, k, d, v))  # their own dicts' containers likewise (libstate.rs)
            if type(v) in _SCALARS or isinstance(v, _BY_REFERENCE_ANYWAY):  # a subclass may not pickle itself
                continue
            _EXTERN.setdefault(id(v), (mname, k))
            if importable and type(k) is str:
                instances.append((mname, k, d, v))  # their own dicts' containers by reference (libstate.rs)
            if type(v) in _LOCKS:
                _MODULE_LOCKS.append((mname, k, v))
    index = getattr(_rs, "index_strings", None)  # absent where the package runs without the worker
    if strs and index is not None:
        index(strs)
    index = getattr(_rs, "index_containers", None)
    if containers and index is not None:
        index(containers)
    index = getattr(_rs, "index_classes", None)
    if classes and index is not None:
        index(classes, _EXTERN, tuple(_LOCKS))  # and objects classes hold that keep an identity, into _EXTERN
    index = getattr(_rs, "index_instances", None)
    if instances and index is not None:
        index(instances)


# The containers the C pickler saves itself (never asking `reducer_override`) that libraries fill at run time:
# those a library module binds are saved by reference by the pickler's persistent_id (src/py/libstate.rs), so
# that a registry reached through a job's or a library frame's variable (`formats = PIL.Image.ID`) is the
# restoring process's own, with what was registered there, and not a copy of what it held at the checkpoint.
_MUTABLE_CONTAINERS = (list, dict, set, bytearray)


def _extern_container(module, attr):
    """A library's list, dict, set or bytearray, saved by reference (src/py/libstate.rs): a module's global
    (`attr` its name), or one at the end of a path (`attr` is `(name, steps)`: a class's attribute, a function's
    default value)."""
    o = _extern(module, attr) if type(attr) is str else _extern_path(module, *attr)
    if type(o) not in _MUTABLE_CONTAINERS:
        raise RestoreError(f"{module}.{attr}, a {type(o).__name__} here, was a list, dict, set or bytearray")
    return o


_BY_REFERENCE_ANYWAY = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)
_NOT_A_DEFAULT_REF = _SCALARS + _BY_REFERENCE_ANYWAY
_EXACT_CONTAINERS = (tuple, frozenset, list, dict, set)  # C pickle saves these itself, never asking the hook


def _default_ref(d):
    return not isinstance(d, _NOT_A_DEFAULT_REF) and type(d) not in _EXACT_CONTAINERS


_DEFAULTS_SEEN = {}  # id(function) -> function: library functions whose defaults are indexed


def index_defaults(f, code=None):
    """Index the default values of `f`, a library's function running in a checkpointed frame, by the path that
    reaches them from its module (`_extern_path`: the function by its qualified name, through its classes' own
    dicts). A default is made once, when the library's `def` runs at import, and each process importing the
    library has its own: a sentinel a library tests with `is` (joblib's `Parallel.__init__(backend=
    default_parallel_config["backend"])`, then `if backend is default_parallel_config["backend"]`), held by a
    local of the frame or passed down to its callees, must come back as the restoring process's own, not as a
    copy, which the library takes for a value its caller passed. Frames only: walking the defaults of every
    library function and method when a worker starts would cost it half a second with scikit-learn and pandas.
    A frame restored earlier runs its morph (a function of its own, `morph._morph_function`): `code`, the frame's
    original code, finds the library's function it stands for, whose defaults these are (a second checkpoint of
    a restored `copy.deepcopy` frame copied its `_nil`)."""
    if type(f) is not types.FunctionType or id(f) in _DEFAULTS_SEEN:
        return
    _DEFAULTS_SEEN[id(f)] = f
    if not f.__defaults__ and not f.__kwdefaults__ and code is None:
        return
    mname = getattr(f, "__module__", None) or ""
    m = sys.modules.get(mname)
    parts = f.__qualname__.split(".")
    if m is None or mname in _JOB_MODULES or mname == "__main__" or "<locals>" in parts or "<lambda>" in parts:
        return
    root = o = m.__dict__.get(parts[0], _ABSENT)
    steps = ()
    for part in parts[1:]:
        o = getattr(o, "__dict__", {}).get(part, _ABSENT)
        steps += (("d", part),)
        if type(o) in (staticmethod, classmethod):
            o, steps = o.__func__, steps + (("f",),)
    if o is not f:
        if code is None or type(o) is not types.FunctionType or o.__code__ is not code:
            return
        f = o
    containers = []
    for key, d in [*enumerate(f.__defaults__ or ()), *(f.__kwdefaults__ or {}).items()]:
        path = (m.__name__, parts[0], steps + (("p" if type(key) is int else "k", key),))
        if _default_ref(d):
            _EXTERN.setdefault(id(d), path)
        elif type(d) in _MUTABLE_CONTAINERS:  # by reference through persistent_id (src/py/libstate.rs)
            containers.append((*path, m.__dict__, root, f, key, d))
    index = getattr(_rs, "index_paths", None)
    if containers and index is not None:
        index(containers)


def _follow(module, attr, steps):
    """What `_extern_path`'s path reaches in this process, or _ABSENT."""
    m = sys.modules.get(module)
    o = m.__dict__.get(attr, _ABSENT) if m is not None else _ABSENT
    try:
        for step in steps:
            if step[0] == "d":
                o = o.__dict__[step[1]]
            elif step[0] == "f":
                o = o.__func__
            elif step[0] == "p":
                o = o.__defaults__[step[1]]
            elif step[0] == "m":  # a dict's key (statics.rs), without a subclass's own __getitem__ or __missing__
                o = dict.__getitem__(o, step[1])
            elif step[0] == "i":  # a list's or tuple's index (statics.rs)
                o = (list.__getitem__ if isinstance(o, list) else tuple.__getitem__)(o, step[1])
            else:
                o = o.__kwdefaults__[step[1]]
    except (AttributeError, KeyError, IndexError, TypeError):
        return _ABSENT
    return o


def _extern_path(module, attr, steps):
    """A library's object at the end of a path from its module, saved by reference: a function's default value
    (a method's, through its class's own dict), a class's attribute (a container, src/py/libstate.rs)."""
    if module not in sys.modules:
        __import__(module, fromlist=["_"])
    o = _follow(module, attr, steps)
    if o is _ABSENT:
        raise RestoreError(f"{module}.{attr} {steps}, saved by reference, does not exist here")
    return o


def extern_holds(ref, obj):
    """Whether the extern index's entry `ref` (module, attribute[, path]) still reaches `obj` in this process."""
    if len(ref) == 2:
        m = sys.modules.get(ref[0])
        return m is not None and m.__dict__.get(ref[1], _ABSENT) is obj
    return _follow(*ref) is obj


_MODULE_LOCKS = []  # (module name, attribute, lock): the locks library modules bind, found by the indexing


def held_module_locks():
    """The locks library modules bind that the job's thread holds at this instant, as (module, attribute, how
    many times): a lock is saved by reference like the module's other objects, so the restoring process, whose
    own is free, must take it again (a job stopped between logging's `_acquireLock()` and `_releaseLock()`
    failed on resume with "cannot release un-acquired lock")."""
    out = []
    for mname, k, lock in _MODULE_LOCKS:
        m = sys.modules.get(mname)
        if m is None or m.__dict__.get(k) is not lock:
            continue
        if type(lock) is _RLOCK:
            if lock._is_owned():
                state = lock._release_save()
                lock._acquire_restore(state)
                out.append((mname, k, state[0]))
        elif lock.locked():
            out.append((mname, k, 1))
    return out


def take_module_locks(held):
    """Take again, in this restoring process, the library modules' locks the job held at the checkpoint."""
    for mname, k, count in held:
        lock = getattr(sys.modules.get(mname), k, None)
        if type(lock) not in _LOCKS:
            raise RestoreError(f"the lock {mname}.{k} the job held is not there to take again")
        for _ in range(count):
            if not lock.acquire(blocking=False):
                raise RestoreError(f"the lock {mname}.{k} the job held is taken in this process")
_IMPORT_KEYS = {}  # module name -> the names it had when first indexed (as imported, when indexed at job start)


def _is_dynamic(code, mod):
    """Code made at run time from generated source (exec, e.g. a file name like ``<string>`` or ``compilation
    24``), not read from a source file or frozen into the interpreter (``<frozen os>``)."""
    f = code.co_filename
    return f != getattr(mod, "__file__", None) and not f.endswith(".py") and not f.startswith("<frozen ") \
        and not mod.__name__.startswith(_PACKAGE + ".")  # this runtime's own, embedded modules


def _dynamic_globals(code, mname):
    """The globals of a library module that dynamic code refers to and that the module did not have when it was
    imported (networkx binds its compiled wrappers' callees under counter-numbered names on first call): another
    process importing the module lacks them, so they travel with the code."""
    mod = sys.modules.get(mname)
    if mod is None:
        return {}
    g = mod.__dict__
    keys = _IMPORT_KEYS.get(mname)
    out = {}
    todo = [code]
    while todo:
        c = todo.pop()
        for n in c.co_names:
            if n in g and n not in out and (keys is None or n not in keys) and \
                    not isinstance(g[n], types.ModuleType):
                out[n] = g[n]
        todo.extend(k for k in c.co_consts if type(k) is types.CodeType)
    return out


_MODULE_KEYS = {}  # id(module dict) -> (dict, the module's key in sys.modules)


def _module_key(g):
    """The key in `sys.modules` of the module whose namespace is `g`, or None. Usually its `__name__`; not for
    `_collections_abc`, which calls itself `collections.abc` (another module), nor for modules imported under a
    second name."""
    name = g.get("__name__")
    m = sys.modules.get(name) if isinstance(name, str) else None
    if m is not None and getattr(m, "__dict__", None) is g:
        return name
    hit = _MODULE_KEYS.get(id(g))
    if hit is not None and hit[0] is g and getattr(sys.modules.get(hit[1]), "__dict__", None) is g:
        return hit[1]
    for k, m in list(sys.modules.items()):
        if getattr(m, "__dict__", None) is g:
            _MODULE_KEYS[id(g)] = (g, k)
            return k
    return None


def _import_modules(names):
    """Import what the job had imported while it ran. A module that does not import here is left out: the
    restore then fails, if at all, where the job's state needs it. Returns the names: they stay the job's
    imports though this process had some already (a zygote taught them), so its next checkpoint names them
    too, for a node whose zygotes lack them."""
    import importlib

    for n in names:
        if n not in sys.modules:
            try:
                importlib.import_module(n)
            except Exception:
                pass
    return names


def _bind_globals(mname, names):
    """Bind what dynamic code of `mname` needs where the module lacks it (never over an existing name)."""
    mod = sys.modules.get(mname) or __import__(mname, fromlist=["_"])
    for k, v in names.items():
        mod.__dict__.setdefault(k, v)


def _library_globals(plans):
    """For each library frame running dynamic code: the module globals it needs that imports do not make."""
    out = {}
    for p in plans:
        m = sys.modules.get(p.module)
        if p.module not in _JOB_MODULES and m is not None and _is_dynamic(p.code, m):
            names = _dynamic_globals(p.code, p.module)
            if names:
                out.setdefault(p.module, {}).update(names)
    return out


def index_statics(name, mod):
    """Index what the module's static globals (`__microlambda_static__`) reach (src/py/statics.rs): once per
    object, at the module's load (in a module zygote, before its children fork) and again, at no cost, at each
    capture (a global bound since is walked then)."""
    index = getattr(_rs, "index_static", None)
    if index is None:
        return
    g = mod.__dict__
    static = sorted(k for k in _static_names(mod) if type(k) is str)

    def others():  # asked only when a walk is made (not at a capture that finds the globals walked already)
        return [o for n, o in g.items() if n not in static and not (n.startswith("__") and n.endswith("__"))
                and not isinstance(o, (types.ModuleType, type, types.FunctionType))]

    for k in static:
        v = g.get(k)
        if v is not None:
            t0 = time.perf_counter() if _DEBUG else 0.0
            n = index(name, k, v, g, others)
            if _DEBUG and time.perf_counter() - t0 > 1e-3:
                print(f"statics: {name}.{k} walked in {(time.perf_counter() - t0) * 1e3:.3f} ms ({n} objects indexed)",
                      file=sys.stderr)


_INPUT = "_input_"
# The input of the job being restored (its JSON text), decoded only if its checkpoint refers to it.
_RESTORE_INPUT = None


def _name_of_input(input_json):
    return _INPUT + hashlib.sha256(input_json.encode()).hexdigest()[:32]


def unbind_input():
    """Forget the job's input (its job ended, or a restore binds its own): a worker that serves several jobs
    never follows a path into another job's input."""
    g = globals()
    for k in [k for k in g if k.startswith(_INPUT)]:
        del g[k]
    forget = getattr(_rs, "forget_input", None)
    if forget is not None:
        forget()


def bind_input(arg, input_json):
    """Bind the job's input here, under a name that carries its digest, and walk it (src/py/statics.rs,
    `index_input`): what the job leaves of it as it came is saved by reference, and a restore decodes the input
    again from the job's record (`expect_input`). A plain value is not bound: it is its own copy."""
    unbind_input()
    g = globals()
    if type(arg) not in (dict, list):
        return
    name = _name_of_input(input_json)
    g[name] = arg
    index = getattr(_rs, "index_input", None)
    if index is None:
        return
    t0 = time.perf_counter() if _DEBUG else 0.0
    n = index(__name__, name, arg, g)
    if _DEBUG and time.perf_counter() - t0 > 1e-3:
        print(f"statics: the job's input walked in {(time.perf_counter() - t0) * 1e3:.3f} ms ({n} objects)",
              file=sys.stderr)


def expect_input(input_json):
    """At a restore's start: the job's input (JSON, or None when the restore has none), for a checkpoint that
    refers to it; any input bound before (another job's) is forgotten."""
    global _RESTORE_INPUT
    unbind_input()
    _RESTORE_INPUT = input_json


def restore_input_done():
    """After a restore: its input's text is not kept (what the restore bound of it stays bound)."""
    global _RESTORE_INPUT
    _RESTORE_INPUT = None


def _bind_restored_input(name):
    s = _RESTORE_INPUT
    if s is None:
        raise RestoreError("the checkpoint refers to its job's input, and this restore was not given the input")
    if _name_of_input(s) != name:
        raise RestoreError("the checkpoint refers to its job's input, and this restore was given another input")
    bind_input(json.loads(s), s)


def _static_path(module, name, kinds, keys):
    """The object a job's static global reaches by this path (src/py/statics.rs) in the restoring process, whose
    module's top level built it again: `_follow`'s steps, an attribute (`d`), a dict's key (`m`), a list's or
    tuple's index (`i`). The job's input is decoded again from its JSON, once, the first time it is asked for."""
    if module == __name__ and name.startswith(_INPUT) and name not in globals():
        _bind_restored_input(name)
    steps = tuple(zip(kinds.decode("ascii", "replace"), keys))
    o = _follow(module, name, steps) if len(kinds) == len(keys) else _ABSENT
    if o is _ABSENT:
        path = "".join(f".{k}" if kind == "d" else f"[{k!r}]" for kind, k in steps)
        raise RestoreError(f"{module}.{name}{path}, part of a static global saved by reference, does not exist here")
    return o


def _extern_index(job):
    """The extern index with the job module's static globals (`__microlambda_static__`) in it, by reference to
    the job's module: entered into the index itself, not into a copy of it (a copy of a library-heavy worker's
    index cost a quarter of a millisecond per capture). An entry outliving its object is harmless: every use
    checks that the module still holds that very object under that name."""
    _index_externs(skip=(job.name,))
    index_statics(job.name, job.module)
    g = job.module.__dict__
    for k in _static_names(job.module):
        v = g.get(k)
        if v is not None:
            _EXTERN[id(v)] = (job.name, k)
    return _EXTERN


def _importable(f):
    mod = sys.modules.get(getattr(f, "__module__", None) or "")
    if mod is None:
        return False
    # Made at run time from generated source (networkx compiles its wrappers with exec into the module's
    # namespace): another process importing the module does not have it, so it is saved by value.
    if type(f) is types.FunctionType and _is_dynamic(f.__code__, mod):
        return False
    o = mod
    for part in f.__qualname__.split("."):
        o = getattr(o, part, None)
        if o is None:
            return False
    return o is f


class _Capture:
    """One checkpoint in progress."""

    def __init__(self, job, gens):
        self.job = job
        self.extern = _extern_index(job)
        self.gens = gens  # id(running generator in the chain) -> its frame plan shape
        self.buffers = []
        self.busy = {}  # id(obj) -> obj: objects in the middle of one of their own methods (a frame's `self`)
        self.job_cells = {}  # id(cell) -> (module, qualname, index): closure cells of the job module's functions
        # (id(code), id(globals), unit, bound slots, stack NULLs) -> the `_GenShape` of the generators saved so
        self.gen_shapes = {}


def _refuse_raw_addresses(values):
    """Wait out an instant where a frame's variable or value-stack entry is an ``__array_interface__`` dict, or
    an object carrying one (numpy's ``as_strided`` builds a ``DummyArray`` holding it, then an array from it)."""
    for v in values:
        if type(v) is not dict:
            v = getattr(v, "__dict__", None)
            v = v.get("__array_interface__") if type(v) is dict else None
        if type(v) is dict and "typestr" in v:
            _refuse_array_interface(v)


def _refuse_array_interface(d):
    """An ``__array_interface__`` dict (numpy's ``as_strided`` builds one, and an array from it) holds its memory
    as a raw address, which means nothing in another process: an array made from it after a restore reads freed
    or foreign memory (a segfault in loadgen's face job). Such an instant is waited out: it lasts one call."""
    data = d.get("data")
    if type(data) is tuple and data and type(data[0]) is int:
        raise NotResumable("the job holds an __array_interface__ with a raw memory address (numpy as_strided): "
                           "wait until the array is made")


def load(data, buffers):
    """Unpickle a checkpoint's root: the loading half of `_Pickler`."""
    loads = getattr(_rs, "number_loads", None)
    if loads is None:
        return pickle.loads(data, buffers=buffers)
    u = pickle.Unpickler(io.BytesIO(data), buffers=buffers)
    u.persistent_load = loads()
    return u.load()


class _Pickler(cloudpickle.Pickler):
    """The checkpoint pickler. Every object the C pickler does not save itself goes through `reducer_override`,
    which dispatches on the object's type to a handler worked out once per type (`_handler_for`): most of a
    library-heavy state's objects are then saved with one dict lookup and the check of the extern index."""

    def __init__(self, file, cap, known=None):
        # cloudpickle's dispatch table is a ChainMap, which the C pickler looks every type it saves up in (a
        # Python-level __getitem__ and __missing__ per object): the same entries as one dict, set before the C
        # pickler's __init__ reads it.
        self.dispatch_table = {**copyreg.dispatch_table, **cloudpickle.Pickler._dispatch_table}
        super().__init__(file, protocol=5, buffer_callback=cap.buffers.append)
        ids = getattr(_rs, "number_ids", None)  # absent where the package runs without the worker (its unit tests)
        if ids is not None:
            # Shared ints and floats stay one object each, and the ids of saved objects their new ids (`known`:
            # the objects an earlier dump of the same state found only after the ints naming them).
            self.persistent_id = ids(self, known)
        self.cap = cap
        self.busy = cap.busy
        self.extern = cap.extern

    def reducer_override(self, obj):
        t = type(obj)
        h = _HANDLERS.get(t)
        if h is None:
            h = _HANDLERS[t] = _handler_for(t)
        return h(self, obj)


def _save_code(self, obj):
    if type(obj.co_consts[-1] if obj.co_consts else None) is _MorphInfo:
        obj = obj.co_consts[-1].code
    r = _code_ref(obj)
    if r is not None:
        return _lookup_code, r
    return cloudpickle.Pickler.reducer_override(self, obj)


def _save_cell(self, obj):
    try:
        v = obj.cell_contents
    except ValueError:
        v = _EMPTY_CELL
    ref = self.cap.job_cells.get(id(obj))
    if ref is not None:
        return _job_cell, ref, (v,), None, None, _cell_fill
    return _make_cell, (), (v,), None, None, _cell_fill


def _save_generator(self, obj):
    return _reduce_generator(obj, self.cap)


def _save_function(self, obj):
    if _importable(obj):
        return NotImplemented
    g = obj.__globals__
    mname = g.get("__name__")
    m = sys.modules.get(mname) if isinstance(mname, str) else None
    if m is not None and m.__dict__ is g:
        dyn = None
        if mname not in _JOB_MODULES and _is_dynamic(obj.__code__, m):
            dyn = _dynamic_globals(obj.__code__, mname) or None
        state = (obj.__defaults__, obj.__kwdefaults__, obj.__dict__ or None,
                 obj.__annotations__ or None, obj.__doc__, obj.__module__, dyn)
        return _make_function, (obj.__code__, mname, obj.__name__, obj.__qualname__, obj.__closure__), \
            state, None, None, _function_setstate
    return cloudpickle.Pickler.reducer_override(self, obj)


def _refuse(self, obj):
    raise TypeError(f"cannot pickle '{type(obj).__name__}' object")


def _save_exception(self, obj):
    return _reduce_exception(obj, type(obj))


def _save_plain(self, obj):
    return _reduce_plain_instance(obj)


def _save_class_entry(self, obj):
    return _class_entry(obj)


def _save_lru(self, obj):
    return _reduce_lru(obj)


def _save_whole_if_own_fails(self, obj):
    """Instances of Python classes that pickle themselves, kept whole when their own pickling fails other than by
    refusing (TypeError): a half-built object (pandas' Index between `object.__new__` and setting `_data` in
    `_simple_new`, on a frame's stack) has no `_data` for its __reduce__ to read, and its __dict__ is all it is."""
    try:
        return obj.__reduce_ex__(5)
    except TypeError:  # how a class refuses to be pickled: let it say so
        raise
    except Exception:
        return _reduce_plain_instance(obj)


def _save_class(self, obj):  # instances of metaclasses: cloudpickle saves classes by reference or by value
    if _made_in_c(obj) and not _importable(obj):
        return _static_type_ref(obj)
    if type(obj.__module__) is str and obj.__module__ not in sys.modules:
        where = _bound_in_package(obj)
        if where is not None:
            return _class_at, (where, obj.__qualname__)
    meta = type(obj)
    if meta is not type and _made_in_c(meta) and not _importable(obj):
        # A class made at run time by a metaclass written in C (ctypes' `CFUNCTYPE(...)`, a Structure defined in
        # a function: threadpoolctl's): by value, it would be made again by calling the metaclass with a name,
        # bases and dict, which misses what the metaclass keeps in C and fails its checks at restore
        # ("class must define _flags_"). Refused here, so the checkpoint waits instead of resuming wrong.
        raise TypeError(
            f"cannot pickle the class {obj.__qualname__}: made at run time by the C metaclass {meta.__qualname__}"
        )
    r = cloudpickle.Pickler.reducer_override(self, obj)
    if type(r) is tuple and len(r) == 6 and r[5] is _CLOUD_CLASS_SETSTATE:
        # By value, cloudpickle makes the class again under its bare name: a class defined in a function
        # (`main.<locals>.Point`) came back as `Point`, and its dataclass repr changed with it.
        r = r[:2] + ((r[2], obj.__qualname__),) + r[3:5] + (_class_setstate_qualname,)
    return r


_CLOUD_CLASS_SETSTATE = getattr(cloudpickle.cloudpickle, "_class_setstate", None)


def _bound_in_package(t):
    """A loaded module of `t`'s package that binds `t` under its qualified name, when the module `t` names is not
    loaded: numpy's `recarray` says it is `numpy.rec`'s, a module numpy imports only on first use of `np.rec`.
    By value, such a class came back as a new class of the same name: a recarray restored in the middle of its
    `__getitem__` failed its `super()` ("obj must be an instance or subtype of type")."""
    hit = _BOUND_IN.get(t, False)
    if hit is not False:
        return hit
    top = t.__module__.partition(".")[0]
    hit = None
    for name, m in list(sys.modules.items()):
        if m is None or not (name == top or name.startswith(top + ".")):
            continue
        o = m
        for part in t.__qualname__.split("."):
            o = (getattr(o, "__dict__", None) or {}).get(part)
        if o is t:
            hit = name
            break
    _BOUND_IN[t] = hit
    return hit


_BOUND_IN = weakref.WeakKeyDictionary()  # class -> the module found to bind it (`_bound_in_package`), or None


def _class_at(module, qualname):
    o = importlib.import_module(module)
    for part in qualname.split("."):
        o = getattr(o, part)
    return o

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made at run time (by `class`, or a C module's heap type)
_IMMUTABLETYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: static types, and the heap types C modules make from specs


def _made_in_c(t):
    """Whether `t` is a C module's type, static or made from a spec (`_csv.writer`, whose module exports a
    function under that name): never a `class` statement's, which is mutable."""
    return not t.__flags__ & _HEAPTYPE or bool(t.__flags__ & _IMMUTABLETYPE)


def _importable(t):
    """Whether `t` is found again by its module and qualified name (how pickle saves a class by reference)."""
    o = sys.modules.get(t.__module__)
    for part in t.__qualname__.split("."):
        o = getattr(o, part, None)
    return o is t


_STATIC_INDEX = {}  # (module, qualname) -> the static type of that name readied in this process, None if several


def index_static_types():
    """Index the C types (static, or made from a spec) readied in this process by module and qualified name: a
    type is listed among its bases' subclasses once its extension module has made it ready. One walk of every class
    (20-60 ms in a process with scikit-learn, pandas and networkx): a zygote makes it before it forks, so a
    restore in its child looks a type up instead of walking again."""
    index, todo, seen = {}, [object], set()
    while todo:
        k = todo.pop()
        for sub in type.__subclasses__(k):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            todo.append(sub)
            if _made_in_c(sub):
                key = (sub.__module__, sub.__qualname__)
                index[key] = sub if index.get(key, sub) is sub else None
    _STATIC_INDEX.clear()
    _STATIC_INDEX.update(index)


def _static_type_by_name(module, qualname):
    """The one static type of that module and name, or None (none, or more than one). A name the index lacks
    walks the classes again (imported since, or readied by its extension module when first used)."""
    key = (module, qualname)
    if key not in _STATIC_INDEX:
        index_static_types()
    return _STATIC_INDEX.get(key)


def _static_type_ref(t):
    """A C type its module does not export under its name (Pillow's `ImagingCore` says its module is `builtins`;
    `_csv` exports a function as `writer`): by module and name, found again among the process's classes, never
    made again by value (cloudpickle's way for a class it cannot import: a C type's methods cannot be put in a
    new class, and its restore failed on the first of them, `KeyError: '__arrow_c_array__'`, or `'dialect'` for
    a csv writer's method on a caller's stack). Refused when the name is not unique."""
    if _static_type_by_name(t.__module__, t.__qualname__) is not t:
        raise TypeError(f"cannot pickle the C type {t.__module__}.{t.__qualname__}: its module does not export it "
                        "and its name is not unique among this process's types")
    return _static_type, (t.__module__, t.__qualname__)


def _static_type(module, qualname):
    t = _static_type_by_name(module, qualname)
    if t is None:
        raise RestoreError(f"the C type {module}.{qualname} is not found once among this process's types (its "
                           "extension module is not imported before the state is loaded?)")
    return t


def _class_setstate_qualname(obj, state):
    state, qualname = state
    obj = _CLOUD_CLASS_SETSTATE(obj, state)
    obj.__qualname__ = qualname
    return obj


def _save_context_var(self, obj):
    """A ContextVar no library module holds (those are in the extern index): by reference to the job module's
    global that holds it, which the module makes again on restore."""
    job = self.cap.job
    for k, v in list(job.module.__dict__.items()):
        if v is obj:
            return _extern, (job.name, k)
    raise TypeError(f"cannot pickle ContextVar {obj.name!r}: no module holds it by name")


def _not_mine(self, obj):
    return NotImplemented


# A C slot or method bound to an instance through super() (`super().__init__(...)` in a subclass of dict or
# Exception, `super().append` in a list's): what a caller's stack holds while it computes the call's arguments.
# Its own __reduce__ is `getattr(self, name)`, which finds the subclass's override instead: the resumed call ran
# the subclass's own __init__ again. Saved as its class's entry bound to the instance.
def _bound_entry(owner, name, obj):
    return vars(owner)[name].__get__(obj, type(obj))


def _save_method_wrapper(self, obj):
    owner, name, me = obj.__objclass__, obj.__name__, obj.__self__
    d = vars(owner).get(name)
    if d is None or d.__get__(me, type(me)) != obj:
        raise TypeError(f"cannot pickle {obj!r}: it is not {owner.__qualname__}.__dict__[{name!r}] bound")
    return _bound_entry, (owner, name, me)


def _builtin_method(obj):
    """A C method bound to an instance (not a module's function, nor a class's class method): its class's entry
    bound to it, when the instance's own attribute of that name is not that entry; else None."""
    me = obj.__self__
    if me is None or isinstance(me, (types.ModuleType, type)):
        return None
    name = obj.__name__
    t = type(me)
    for owner in t.__mro__:
        d = vars(owner).get(name)
        if type(d) is types.MethodDescriptorType and d.__objclass__ is owner:
            try:
                same = d.__get__(me, t) == obj
            except TypeError:
                return None
            if same:
                return None if getattr(t, name, None) is d else (_bound_entry, (owner, name, me))
    return None


def _by_reference(self, obj):
    """The reduction of `obj` as a library's object found again by its path in the restoring process, when the
    extern index has it and the path still reaches it here; else None."""
    ref = self.extern.get(id(obj))
    if ref is not None and extern_holds(ref, obj):
        return (_extern, ref) if len(ref) == 2 else (_extern_path, ref)
    return None


def _library_container(c, t):
    """Whether `c` is a `t` (list or dict) a library owns, which the pickler's persistent_id saves by reference
    (src/py/libstate.rs: a module's global, a class's attribute, a function's default)."""
    ref = getattr(_rs, "container_ref", None)
    return type(c) is t and ref is not None and ref(c) is not None


def _save_list_iterator(self, it):
    """An iterator over a list a library module binds, which is saved by reference (src/py/libstate.rs): its
    position is an index, right in the restoring process's list only where that list starts with the items
    the iterator had at the checkpoint (a registry filled in another order there, by a zygote that loaded a
    library's plugins in another job's order, would skip some and yield others twice). So the items are saved
    with it, and where the restoring list does not start with them, it goes on over the rest of them as they
    were (`_library_list_iter`). Other list iterators are saved as pickle saves them."""
    r = _by_reference(self, it)  # itself a library module's
    if r is not None:
        return r
    r = it.__reduce__()
    if len(r) < 3:  # exhausted
        return NotImplemented
    lst, index = r[1][0], r[2]
    if not _library_container(lst, list):
        return NotImplemented
    return _library_list_iter, (lst, index, tuple(lst))


def _over_library_dict(self, r):
    """A dict iterator's reduction `r` (views.py), made `_library_dict_iter`'s when its dict is one a library module
    binds, saved by reference (src/py/libstate.rs): with the entries it had left, which it goes on over where the
    restoring process's dict is not as it was there (`_save_list_iterator`: the same for lists)."""
    if type(r) is not tuple or r[0] is not _dict_iter:
        return r
    d, kind, rev, skip = r[1][:4]
    if not _library_container(d, dict):
        return r
    view = getattr(dict, kind)(d)
    return _library_dict_iter, (d, kind, rev, skip, (list(reversed(view)) if rev else list(view))[skip:])


def _library_list_iter(lst, index, items):
    """An iterator over `lst`, a library's list, `index` items in, when it starts with `items` (what it held at the
    checkpoint; appended to since is fine); else over the rest of `items` (`_save_list_iterator`)."""
    if len(lst) >= len(items) and all(map(_same_item, lst, items)):
        it = iter(lst)
        it.__setstate__(index)
        return it
    return iter(items[index:])


def _save_super(self, obj):
    """A `super()` object, as the class it starts the search after and the object it binds: what a caller's
    stack holds between `super()` and the attribute looked up on it. Pickling it on its own asks, through the
    proxy, the bound object's `__reduce_ex__`: a plain instance failed to pickle (the instant was waited out),
    and a `random.Random` subclass's came back as a new instance made by `Biased()` (restore failed: `__init__`
    missing arguments; with no arguments, the resumed `super().random()` would have run the subclass's own)."""
    if obj.__self__ is None:
        return super, (obj.__thisclass__,)
    return super, (obj.__thisclass__, obj.__self__)


_FIXED = {super: _save_super, types.CodeType: _save_code, types.MethodWrapperType: _save_method_wrapper, types.CellType: _save_cell,
          types.GeneratorType: _save_generator,
          types.FunctionType: _save_function, types.FrameType: _refuse, types.TracebackType: _refuse,
          types.CoroutineType: _refuse, types.AsyncGeneratorType: _refuse, type(iter([])): _save_list_iterator}
_HANDLERS = {}  # type -> how the pickler saves its instances (`_handler_for`)


def _exact_numpy_scalar(t):
    """Whether `t` is one of numpy's own bool, integer, float (up to 64 bits) or complex (up to 128) scalar
    types, whose `.item()` is a Python value that the type makes the same scalar of again, bit for bit."""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(t, type) or not issubclass(t, np.generic) or t.__module__ != "numpy":
        return False
    try:
        d = np.dtype(t)
    except TypeError:
        return False
    return d.kind in "biu" or (d.kind == "f" and d.itemsize <= 8) or (d.kind == "c" and d.itemsize <= 16)


def _save_numpy_scalar(self, obj):
    """A numpy scalar as its type called on its Python value: numpy's own reduction (the dtype and the raw bytes,
    through `numpy.core.multiarray.scalar`) costs about three times as much per scalar, and real states hold
    thousands of them (lists of `np.mean(...)` results, NeuroKit2's per-beat features)."""
    return type(obj), (obj.item(),)


def _handler_for(t):
    """How instances of `t` are saved, in this order of precedence: the runtime's own types (code, cells,
    generators, functions, C slots bound to an instance; frames and the like refused), exceptions, live views
    and library types whose whole state is read (refs.py), C descriptors by their class's entry; then, for an
    object in the middle of one of its own methods, waiting (C state) or its whole state; regular files and C
    iterators; classes whose own pickling cannot be run (permissive __getattr__, a __new__ that takes
    arguments); objects library modules own, by reference (per object: the extern index); lru_cache wrappers,
    numpy views, Python classes whose own pickling may fail on a half-built object; then cloudpickle's and the C
    pickler's own ways."""
    fixed = _FIXED.get(t)
    if fixed is not None:
        return fixed
    if _exact_numpy_scalar(t):
        return _save_numpy_scalar
    if issubclass(t, BaseException):
        return _save_exception
    live = _LIVE.get(t) or REFS.get(t) or library_reducer(t)
    if live is WHOLE:
        return _save_plain
    if live and t in _DICT_ITERS:
        return lambda self, obj: _over_library_dict(self, live(obj))
    if live:
        return lambda self, obj: live(obj)
    if t in _C_DESCRIPTORS:
        return _save_class_entry
    np = sys.modules.get("numpy")
    if np is not None and t is np.ndarray:
        return _save_ndarray
    # An ndarray subclass keeping its state in the array and its __dict__ is saved whole at any instant (views.py).
    c_state = _c_state_reducer(t) and not (np is not None and issubclass(t, np.ndarray) and _state_in_dict(t, np))
    own = not c_state and _own_reducer(t)
    early = _OPEN_FILES.get(t) or _C_ITERATORS.get(t) or cython_reducer(t)
    if early is None and _whole_c_state_pickled(t) and t is not sys.modules["random"].Random:
        early = _reduce_random  # a subclass: Random's own pickling calls it bare and drops its attributes
    if early is None and (_permissive_getattr(t) or _new_takes_arguments(t)):
        early = _reduce_plain_instance
    if t is _LRU:
        last = _save_lru
    elif t is contextvars.ContextVar:
        last = _save_context_var
    elif t in _LOCKS:
        last = _LOCKS[t]
    elif np is not None and issubclass(t, np.ndarray):
        def last(self, obj):
            return _reduce_ndarray(obj, np)
    elif np is not None and issubclass(t, np.void):
        def last(self, obj):
            return _reduce_void(obj, np)
    elif t not in copyreg.dispatch_table and t not in cloudpickle.Pickler._dispatch_table and \
            _pickles_itself(t) and _no_c_state(t):
        last = _save_whole_if_own_fails
    elif issubclass(t, type):
        last = _save_class
    else:
        last = _not_mine
    busy_msg = f"a {t.__module__}.{t.__qualname__} is in the middle of one of its methods, and its C-level " \
        "state is saved only by its own pickling, written for objects at rest"

    def save(self, obj):
        if own and _holds_open_file(obj):
            return _reduce_plain_instance(obj)
        if (c_state or own) and id(obj) in self.busy:
            if c_state:
                raise NotResumable(busy_msg)
            r = _busy_own_reduce(obj)
            if r is not None:
                return r
        if early is not None:
            r = early(obj)
            if r is not NotImplemented:  # declined (an open StringIO): saved as any other object
                return r
        return _by_reference(self, obj) or last(self, obj)

    if t is types.BuiltinMethodType:
        return lambda self, obj: _builtin_method(obj) or save(self, obj)
    return save


def _save_ndarray(self, obj):
    """A plain numpy array, the object real states hold most (hundreds per capture in a pandas-heavy job): what
    `_handler_for`'s general path does for the class (an extern by reference, else `_reduce_ndarray`), without
    the checks that cannot apply to it (own reducer, C state, files, iterators); one owning its memory goes
    straight to numpy's own reduction."""
    r = _by_reference(self, obj)
    if r is not None:
        return r
    if obj.base is None:
        return NotImplemented
    return _reduce_ndarray(obj, sys.modules["numpy"])


def _reduce_exception(e, t):
    """An exception with its cause, context and notes, which plain pickling drops."""
    ctor_args, state = e.args, getattr(e, "__dict__", None) or None
    try:
        r = e.__reduce__()
    except Exception:
        r = None
    # The class's own reduction, when it rebuilds this class from arguments and a state mapping.
    if type(r) is tuple and len(r) >= 2 and r[0] is t and type(r[1]) is tuple:
        ctor_args = r[1]
        extra = r[2] if len(r) > 2 else None
        if isinstance(extra, dict):
            state = extra or None
    return _make_exception, (t, e.args, state, e.__cause__, e.__context__, e.__suppress_context__,
                             getattr(e, "__notes__", None), ctor_args)


def _reduce_generator(g, cap):
    shape = cap.gens.get(id(g))
    if shape is not None:  # running, in the checkpointed chain
        code, module, qualname, closure, target, slots, mask, call_unit = shape
        # No state: restore() fills the shell and advances it once the inner frames exist.
        return _make_gen, (code, module, qualname, closure, K_GEN_RUNNING, target, slots, mask, call_unit, None)
    state = _rs.gen_state(g)
    if state >= 0 and state != 0:  # completed or cleared
        return _exhausted_gen, ()
    if state == 0:
        raise NotResumable("a generator outside the checkpointed chain is running")
    code0, u, glob, slots, values, stack, mask, exc = _rs.gen_parts(g, NULL)
    # What depends only on the code, the instruction and the frame's layout, once per capture (a state can hold
    # thousands of generators suspended at the same yield).
    key = (id(code0), id(glob), u if state != GEN_CREATED else -1, slots, mask)
    shape = cap.gen_shapes.get(key)
    if shape is None:
        code, module, yu, marks, shift = _gen_facts(code0, u, state, glob)
        marks = tuple(s for s in marks if s < len(mask)) if marks else ()
        shape = cap.gen_shapes[key] = _GenShape(code, module, yu, slots, mask, marks)
        shape.shift = shift
    closure = _closure_of(shape.code, slots, values) if shape.nfree else None
    if state == GEN_CREATED:
        return _make_started_later, (shape, g.__qualname__, closure, values)
    if shape.marks:
        stack = [_fix_lasti(v, i, shape.marks, shape.shift) for i, v in enumerate(stack)]
    return _make_suspended_gen, (shape, g.__qualname__, closure), (values, stack, exc), None, None, _gen_setstate


def _gen_facts(code0, u, state, globals_):
    """(original code, module key, the yield's unit, its lasti marks, the morph's shift) of a suspended
    generator's frame running `code0` (possibly a morph) at unit `u` with `globals_`; the unit and marks are None
    for a generator not started. Raises NotResumable where the frame cannot be saved."""
    info, shift, special = _origin(code0)
    module = _module_key(globals_)
    if state == GEN_CREATED:
        return info.code, module, None, None, shift
    if u < shift:
        sp = special.get(u)
        if sp is None or sp[0] != "yield":
            raise NotResumable("a generator is being restored")
        yu = sp[1]
    else:
        yu = u - shift
    if info.instr(yu).op != YIELD_VALUE:
        raise NotResumable("a suspended generator is not at a yield")
    return info.code, module, yu, info.lasti_marks(yu), shift
