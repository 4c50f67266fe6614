"""Reducers for weak references, and for extension types of widely used libraries that cannot pickle
themselves but whose whole state can be read back through their public API.

A weak reference is saved as a reference to what it refers to: its referent is pickled with the rest of the
state (once, shared with every strong reference to it) and the reference is taken again on restore. A referent
that nothing else in the state holds is, after the restore, held by nothing, and dies as it would have once the
job dropped its last strong reference: its reference then reads as dead, as in a job that ran on. A dead
reference is restored dead. Callbacks are saved with their reference. Proxies (``weakref.proxy``) are not
saved: Python gives no way to reach a proxy's referent without calling into it.

Extension types (Cython classes with a non-trivial ``__cinit__`` get no pickling of their own) are found by
module and qualified name, so no library is imported for them; each reducer reads the whole state the type
holds, and ``python/tests/test_refs.py`` checks that a rebuilt instance is equal in every field it exposes.

Size: one short reducer per type, each independent of the others, kept beside the one table (``BY_NAME``) that
names the types they save, so that what is saved by name can be read in one place.
"""

import contextvars
import sys
import weakref

from .base import RestoreError, _rs


class _Gone:
    """Something a dead reference referred to."""

    __slots__ = ("__weakref__",)


def _dead(kind, *extra):
    """A dead weak reference of type `kind` (no callback: a dead reference never calls one again)."""
    gone = _Gone()
    r = kind(gone, None, *extra)
    del gone
    return r


def _hash_field():
    """Where CPython 3.11 keeps a weak reference's hash, computed once while its referent lives (after the object
    header, `wr_object` and `wr_callback`), as a ctypes field maker; None when a live reference's hash is not
    found there (then dead references are saved without it)."""
    import ctypes

    off = object.__basicsize__ + 2 * ctypes.sizeof(ctypes.c_void_p)
    probe = _Gone()
    r = weakref.ref(probe)
    h = hash(r)
    fresh = weakref.ref(_Gone())  # dead at once, its hash never asked: the field holds -1
    ok = weakref.ref.__basicsize__ >= off + ctypes.sizeof(ctypes.c_ssize_t) and \
        ctypes.c_ssize_t.from_address(id(r) + off).value == h and \
        ctypes.c_ssize_t.from_address(id(fresh) + off).value == -1
    return (lambda ref: ctypes.c_ssize_t.from_address(id(ref) + off)) if ok else None


_HASH_OF = _hash_field()


def _dead_hash(r):
    """The hash a dead reference computed while its referent lived (a dict or set it is a key of, such as a
    WeakKeyDictionary iterated while a key died, whose removal waits for the iteration to end), or -1."""
    return -1 if _HASH_OF is None else _HASH_OF(r).value


def _dead_hashed(kind, h, *extra):
    """A dead weak reference of type `kind` with the hash the saved one had, so that it is found again in the
    dicts and sets it is a key of (hashing a dead reference whose hash was never computed raises TypeError)."""
    r = _dead(kind, *extra)
    if h != -1 and _HASH_OF is not None:
        _HASH_OF(r).value = h
    return r


def _reduce_ref(r):
    obj = r()
    if obj is None:
        h = _dead_hash(r)
        return (_dead, (weakref.ref,)) if h == -1 else (_dead_hashed, (weakref.ref, h))
    return weakref.ref, (obj,) if r.__callback__ is None else (obj, r.__callback__)


def _reduce_keyed_ref(r):
    obj = r()
    if obj is None:
        h = _dead_hash(r)
        return (_dead, (weakref.KeyedRef, r.key)) if h == -1 else (_dead_hashed, (weakref.KeyedRef, h, r.key))
    return weakref.KeyedRef, (obj, r.__callback__, r.key)


def _reduce_weak_method(r):
    # WeakMethod holds a reference to the instance (itself) and one to the function, and wraps the callback it
    # was given in a closure of its own: that closure's `callback` cell is what it was given.
    meth = r()
    if meth is None:
        return _dead_weak_method, ()
    wrapper = r.__callback__
    given = None
    if wrapper is not None and "callback" in wrapper.__code__.co_freevars:
        given = wrapper.__closure__[wrapper.__code__.co_freevars.index("callback")].cell_contents
    return weakref.WeakMethod, (meth,) if given is None else (meth, given)


def _dead_weak_method():
    class _Owner:
        def method(self):  # pragma: no cover - never called
            pass

    owner = _Owner()
    r = weakref.WeakMethod(owner.method)
    del owner
    return r


# --- context variable tokens ----------------------------------------------------------------------------------
# `var.set(value)` returns a Token that `var.reset(token)` later uses to put the variable back as it was: what
# `with np.errstate(...)` and other context managers hold while their block runs. A token cannot be built from
# its parts, only made again by the calls that made it, and an unused one must be made in the context the job
# goes on in (reset refuses a token of another context): the restoring thread's own.
# - An unused token with an old value: the variable set to that value, the token made, the variable put back
#   as it was through the first set's own token. The variable is left unchanged.
# - An unused token made when the variable had no value: made while it has none, leaving it set. There is at
#   most one such token per variable (making a second needs the first one used).
# - A used token only tells its old value and refuses to be used again (checked before its context is): made
#   and used in a throwaway context.
# Once everything is unpickled, `settle_context_vars` sets each variable to the value it had at the checkpoint.

class _NoValue:
    """"No value in the context" (what `var.get` is given as its default), in a pickle as in a context."""

    __slots__ = ()

    def __reduce__(self):
        return "_NO_VALUE_MARK"


_NO_VALUE_MARK = _NoValue()
_SETTLE = {}  # ContextVar -> the value it had at the checkpoint (or _NO_VALUE_MARK), while a restore runs


def _is_capsule(v):
    t = type(v)
    return t.__name__ == "PyCapsule" and t.__module__ == "builtins"


def portable_value(var, value):
    """A context variable's value as it can be saved: numpy's floating-point error state is a capsule (a C
    pointer), saved as the settings numpy's public API reads from it and made again from them on restore; any
    other capsule cannot be saved (TypeError)."""
    if not _is_capsule(value):
        return value
    cfg = sys.modules.get("numpy._core._ufunc_config")
    if cfg is not None and var is getattr(cfg, "_extobj_contextvar", None):
        return _NumpyErrState(contextvars.Context().run(_numpy_settings, var, value))
    raise TypeError(f"cannot pickle the value of ContextVar {var.name!r}: a C capsule")


def _numpy_settings(var, value):  # in a throwaway context
    import numpy as np

    var.set(value)
    return np.geterr(), np.getbufsize(), np.geterrcall()


class _NumpyErrState:
    __slots__ = ("settings",)

    def __init__(self, settings):
        self.settings = settings

    def __reduce__(self):
        return _numpy_extobj, (self.settings,)


def _numpy_extobj(settings):
    """numpy's error-state capsule for these settings, made in a throwaway context."""
    return contextvars.Context().run(_make_numpy_extobj, settings)


def _make_numpy_extobj(settings):
    import numpy as np
    from numpy._core import _ufunc_config

    err, bufsize, call = settings
    np.seterr(**err)
    np.setbufsize(bufsize)
    np.seterrcall(call)
    return _ufunc_config._extobj_contextvar.get()


def _reduce_token(tok):
    var = tok.var
    old = _NO_VALUE_MARK if tok.old_value is contextvars.Token.MISSING else portable_value(var, tok.old_value)
    used = bool(_rs.token_used(tok))
    cur = var.get(_NO_VALUE_MARK)
    cur = cur if cur is _NO_VALUE_MARK else portable_value(var, cur)
    if cur is _NO_VALUE_MARK and old is _NO_VALUE_MARK and not used:
        raise TypeError(f"cannot pickle a Token of ContextVar {var.name!r}: the variable has no value, and a token "
                        "made again as this one was would leave it with one")
    return _make_token, (var, old, cur, used)


def _made_and_used(var, old):
    if old is not _NO_VALUE_MARK:
        var.set(old)
    tok = var.set(None)
    var.reset(tok)
    return tok


def _make_token(var, old, cur, used):
    _SETTLE[var] = cur
    if used:
        return contextvars.Context().run(_made_and_used, var, old)
    if old is _NO_VALUE_MARK:
        if var.get(_NO_VALUE_MARK) is not _NO_VALUE_MARK:
            raise RestoreError(f"a Token of ContextVar {var.name!r} made when it had no value cannot be made "
                               "again: it has one here")
        return var.set(None)
    back = var.set(old)
    tok = var.set(None)
    var.reset(back)
    return tok


def settle_context_vars():
    """Set every variable a restored token refers to as it was at the checkpoint."""
    try:
        for var, cur in _SETTLE.items():
            if cur is not _NO_VALUE_MARK:
                var.set(cur)
            elif var.get(_NO_VALUE_MARK) is not _NO_VALUE_MARK:
                raise RestoreError(f"ContextVar {var.name!r} had no value at the checkpoint but has one here")
    finally:
        _SETTLE.clear()


REFS = {
    weakref.ref: _reduce_ref,
    weakref.KeyedRef: _reduce_keyed_ref,
    weakref.WeakMethod: _reduce_weak_method,
    contextvars.Token: _reduce_token,
}


# --- extension types of libraries, by (module, qualified name) of the type or a base ------------------------
# pandas' own pickling of its block managers rebuilds every block with fresh copy-on-write bookkeeping: two
# frames restored over one shared array would then not know of each other, and a write through one would show
# in the other. Managers, blocks and their BlockValuesRefs are saved whole instead, sharing as they did.


def _reduce_block_placement(bp):
    # Which rows of the manager a block holds, a slice or an integer array; the constructor derives every
    # other field from it.
    return type(bp), (bp.indexer,)


def _reduce_block_values_refs(refs):
    # Weak references to the blocks (and indexes) sharing one array, and the length at which dead ones are
    # next cleared: both fields public. Built bare first, so that a block it refers to can name it. The dead
    # references are left out, as pandas' own clearing would (it only ever counts the live ones): a long job
    # keeps hundreds of them between clearings.
    live = [r for r in refs.referenced_blocks if r() is not None]
    return _bare, (type(refs),), (live, refs.clear_counter), None, None, _fill_values_refs


def _fill_values_refs(refs, state):
    refs.referenced_blocks, refs.clear_counter = state


def _reduce_block(b):
    # values, placement, ndim and refs are the whole C state. refs is set after the constructor, which would
    # otherwise register the block again in it: the restored refs have their list of references already.
    d = getattr(b, "__dict__", None)
    return _block, (type(b), b.values, b._mgr_locs, b.ndim, b.refs), d or None, None, None, _set_dict


def _block(t, values, placement, ndim, refs):
    b = t(values, placement=placement, ndim=ndim)
    b.refs = refs
    return b


_MANAGER_FIELDS = ("blocks", "axes", "_blknos", "_blklocs", "_known_consolidated", "_is_consolidated",
                   "_interleaved_dtype", "_dtypes_cache")


def _reduce_block_manager(m):
    # Every C field of the two-dimensional manager is public; its constructor takes no argument it needs.
    fields = tuple(getattr(m, f) for f in _MANAGER_FIELDS)
    return _bare, (type(m),), (fields, getattr(m, "__dict__", None) or None), None, None, _fill_manager


def _fill_manager(m, state):
    fields, d = state
    for name, value in zip(_MANAGER_FIELDS, fields):
        setattr(m, name, value)
    if d:
        m.__dict__.update(d)


def _set_dict(obj, d):  # not the class's own __setstate__, which reads its own pickling's state
    obj.__dict__.update(d)


def _bare(t):
    return t.__new__(t)


# Pillow's pixel store (`Image.im`), which cannot pickle itself: an image being filtered, resized or decoded holds
# one on its methods' stacks, and an image still reading its file is saved whole, with it. Saved as its mode,
# size, raw pixels and palette, through Pillow's public raw codec, and made again as a new store of the same
# mode. Its pixels are copied, as Pillow's own pickling of an image copies them.
def _reduce_imaging_core(core):
    from PIL import Image

    if type(core) is not type(Image.core.new("1", (1, 1))):  # another library's type of the same name
        raise TypeError(f"cannot pickle {type(core).__qualname__!r} object")
    palette = None
    if core.mode in ("P", "PA"):
        pm = core.getpalettemode()
        palette = (pm, core.getpalette(pm, pm))
    return _imaging_core, (core.mode, core.size, Image.Image()._new(core).tobytes(), palette)


def _imaging_core(mode, size, data, palette):
    from PIL import Image

    core = Image.frombytes(mode, size, data).im
    if palette is not None:
        core.putpalette(palette[0], palette[0], palette[1])
    return core


# Pillow's drawing context (`ImageDraw.Draw(im)`), which a job typically keeps in a local from its first shape to
# the end of its function: its C drawer (`draw`, an ImagingDraw) cannot be pickled, nor read back, so every
# checkpoint of that function waited until it returned. The drawer holds only the pixel store it draws on (the
# context's `im`, saved with the image that shares it) and whether it blends (`mode` RGBA on an RGB store, as
# `ImageDraw.__init__` decides): made again from those, after the rest of the context's state is restored.
def _reduce_image_draw(d):
    state = dict(d.__dict__)
    drawer = state.get("draw")
    state["draw"] = None  # keeps its place among the attributes; made again by _set_image_draw
    core = state.get("im")
    if drawer is None or core is None or type(drawer).__name__ != "ImagingDraw":
        raise TypeError(f"cannot pickle {type(d).__qualname__!r} object: not a drawing context Pillow made")
    blend = 1 if state.get("mode") == "RGBA" and core.mode == "RGB" else 0
    # An image's own pickling makes it a new pixel store: the context must draw on that one, as it drew on the
    # image's before (not on a copy of its own, which nothing would ever read).
    image = state.get("_image")
    held = getattr(image, "__dict__", {})
    if held.get("_im", held.get("im")) is core:  # Pillow >= 11 keeps it as `_im`, behind an `im` property
        state["im"] = None
    return _bare, (type(d),), (state, blend), None, None, _set_image_draw


def _set_image_draw(d, state):
    from PIL import Image

    state, blend = state
    d.__dict__.update(state)
    if d.im is None:
        d.im = d._image.im
    d.draw = Image.core.draw(d.im, blend)
    return d


# The standard library's and numpy's objects that cache a C helper they can make again from their own state:
# a struct.Struct (its format), a JSONDecoder (its C scanner, made from the decoder's settings), numpy's
# vectorize (the ufunc it made on its first call, rebuilt from `pyfunc` on the next call when absent), numpy's
# _array_converter (made again from the arguments it shows).
def _reduce_struct(s):
    import struct

    if type(s) is not struct.Struct:
        raise TypeError(f"cannot pickle {type(s).__qualname__!r} object")
    return struct.Struct, (s.format,)


# _struct.c (3.11): the header (16), the Struct (so), the Py_buffer it unpacks (buf: data pointer, obj, len,
# itemsize, readonly and ndim ints, format, shape, strides, suboffsets, internal) and the offset of the next
# record (index); so is cleared and the buffer released once the iterator ran out.
_U_SO, _U_DATA, _U_OBJ, _U_LEN, _U_INDEX, _U_SIZE = 16, 24, 32, 40, 104, 112


def _unpack_words(it):
    import ctypes
    import struct

    if type(it).__basicsize__ != _U_SIZE or struct.calcsize("P") != 8:
        raise TypeError("cannot pickle '_struct.unpack_iterator' object: its C fields are not where CPython "
                        "3.11's _struct.c puts them")
    so, data, obj, length = struct.unpack("<4q", ctypes.string_at(id(it) + _U_SO, _U_LEN + 8 - _U_SO))
    return so, data, obj, length, ctypes.c_ssize_t.from_address(id(it) + _U_INDEX).value


def _reduce_unpack_iterator(it):
    """A ``struct.iter_unpack`` iterator, as its Struct, the object whose buffer it reads and the offset of the
    record it unpacks next; made again by ``iter_unpack`` over the same object, then given that offset. Its
    fields are read once checked against a fresh iterator over the same object (same data and length, an offset
    within them at a record's start, the length hint it gives)."""
    import ctypes

    so, data, obj, length, index = _unpack_words(it)
    if so == 0:  # ran out: the Struct and the buffer are let go
        return _made_unpack_iterator, (None, None, 0)
    s = ctypes.cast(so, ctypes.py_object).value
    o = ctypes.cast(obj, ctypes.py_object).value
    fresh = s.iter_unpack(o)
    f_so, f_data, f_obj, f_length, f_index = _unpack_words(fresh)
    del fresh
    if (f_so, f_data, f_obj, f_length, f_index) != (so, data, obj, length, 0) or not 0 <= index <= length or \
            index % s.size or (length - index) // s.size != it.__length_hint__():
        raise TypeError("cannot pickle '_struct.unpack_iterator' object: its fields do not show the buffer it reads")
    return _made_unpack_iterator, (s, o, index)


def _made_unpack_iterator(s, o, index):
    import ctypes
    import struct

    if s is None:
        it = struct.Struct("x").iter_unpack(b"")
        next(it, None)  # runs out, letting go of its Struct and buffer as the saved one had
        return it
    it = s.iter_unpack(o)
    if _unpack_words(it)[2:] != (id(o), memoryview(o).nbytes, 0):
        raise RestoreError("a struct.iter_unpack iterator made again does not hold its buffer where _struct.c does")
    ctypes.c_ssize_t.from_address(id(it) + _U_INDEX).value = index
    return it


def _reduce_pattern(p):
    """A compiled regular expression. re's own pickling makes it again from its source, but one compiled from a
    parsed pattern (`re.Scanner`, which builds its alternation with the parser: `pattern` is None) has none, and
    came back as an error at restore ("first argument must be string or compiled pattern"). That one is saved
    as the code the compiler made, read from the object (its fields are fixed in CPython 3.11's `sre.h`), and
    made again by `_sre.compile` from it; the copy's code is compared with the original's at the capture."""
    import re

    if type(p) is not re.Pattern:
        raise TypeError(f"cannot pickle {type(p).__qualname__!r} object")
    if p.pattern is not None:
        return re._compile, (p.pattern, p.flags)
    parts = _pattern_parts(p)
    made = _make_pattern(*parts)
    if _pattern_parts(made) != parts:
        raise TypeError("cannot pickle a re.Pattern compiled without a source: its code could not be read back")
    return _make_pattern, parts


def _pattern_parts(p):
    """(flags, code, groups, groupindex, indexgroup) of a Pattern without a source, checked against the fields
    Python shows (`sre.h`: the object's header, groups, groupindex, indexgroup, pattern, flags, weakreflist,
    isbytes, codesize, then the code as 32-bit words)."""
    import ctypes
    import struct

    head = ctypes.string_at(id(p), 88)
    _, _, size, groups, _, indexgroup, pattern, flags, _, isbytes, codesize = struct.unpack("<9q", head[:72]) + \
        struct.unpack("<qq", head[72:88])
    flags &= 0xFFFFFFFF  # C ints, each padded to a word
    isbytes = struct.unpack("<i", struct.pack("<I", isbytes & 0xFFFFFFFF))[0]
    if size != codesize or groups != p.groups or pattern != id(None) or flags != p.flags or isbytes not in (-1, 0, 1) \
            or struct.calcsize("P") != 8:
        raise TypeError("cannot pickle a re.Pattern compiled without a source: its fields are not where CPython "
                        "3.11 puts them")
    code = list(struct.unpack(f"<{codesize}I", ctypes.string_at(id(p) + 88, 4 * codesize)))
    # NULL (or None) where the pattern names no group; else the tuple of names by group number.
    ig = None if indexgroup in (0, id(None)) else ctypes.cast(indexgroup, ctypes.py_object).value
    if ig is not None and type(ig) is not tuple:
        raise TypeError("cannot pickle a re.Pattern compiled without a source: its group names are not a tuple")
    return flags, code, groups, dict(p.groupindex), ig


def _make_pattern(flags, code, groups, groupindex, indexgroup):
    import _sre

    return _sre.compile(None, flags, code, groups, groupindex, () if indexgroup is None else indexgroup)


def _reduce_decimal_manager(m):
    """A `decimal.localcontext()` manager the job is inside (its `with` holds the bound `__exit__` on the frame's
    stack: every instant of a `with localcontext()` block in the job's own function was refused). Its C fields
    are the context `__enter__` made current and the one `__exit__` puts back; neither is shown to Python. They
    are read from the object (`_decimal.c`: the header, then `local`, then `global`) once the first is found to
    be the thread's current context, which it is between `__enter__` and `__exit__`; a manager not entered, or
    left, is refused as before. Made again as the manager `localcontext()` makes while the saved `global` is
    current: its `__exit__` puts that back. (Its `local` is then a copy: entering the same manager a second time,
    after a restore, would install the copy, not the job's object.)"""
    import ctypes
    import decimal
    import struct

    t = type(m)
    if t.__basicsize__ != 32 or struct.calcsize("P") != 8:
        raise TypeError("cannot pickle a decimal.ContextManager: its fields are not where CPython 3.11 puts them")
    local, glob = struct.unpack("<2q", ctypes.string_at(id(m) + 16, 16))
    if local != id(decimal.getcontext()):
        raise TypeError("cannot pickle a decimal.ContextManager that the job is not inside")
    g = ctypes.cast(glob, ctypes.py_object).value
    if type(g) is not decimal.Context:
        raise TypeError("cannot pickle a decimal.ContextManager: the context it restores could not be read")
    return _make_decimal_manager, (g, decimal.getcontext())


def _make_decimal_manager(glob, local):
    """The manager `localcontext()` makes while `glob` is current, its `local` then set to the job's context
    (the restored current one, shared in the pickle), so that a later capture finds it entered again."""
    import ctypes
    import decimal
    import struct

    cur = decimal.getcontext()
    decimal.setcontext(glob)
    try:
        m = decimal.localcontext()
    finally:
        decimal.setcontext(cur)
    at = id(m) + 16
    old = struct.unpack("<q", ctypes.string_at(at, 8))[0]
    if old == id(local) or type(ctypes.cast(old, ctypes.py_object).value) is not decimal.Context:
        return m
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(local))
    ctypes.c_void_p.from_address(at).value = id(local)
    ctypes.pythonapi.Py_DecRef(ctypes.c_void_p(old))
    return m


def _reduce_csv_reader(r):
    from .files import reduce_csv_reader

    return reduce_csv_reader(r)


def _reduce_csv_writer(w):
    from .files import reduce_csv_writer

    return reduce_csv_writer(w)


def _reduce_csv_dialect(d):
    from .files import reduce_csv_dialect

    return reduce_csv_dialect(d)


def _reduce_json_decoder(d):
    # A decoder stopped inside its own __init__ has not made its scanner yet, and may lack the settings the
    # scanner reads (`strict`): it is made again only when the live one had it, and __init__, resumed, makes it.
    st = vars(d)
    return _bare, (type(d),), ({k: v for k, v in st.items() if k != "scan_once"}, "scan_once" in st), None, None, \
        _set_decoder


def _set_decoder(d, state):
    from json import scanner

    state, has_scanner = state
    d.__dict__.update(state)
    if has_scanner:
        d.scan_once = scanner.make_scanner(d)


def _reduce_vectorize(v):
    d = vars(v)
    empty = {} if isinstance(d.get("_ufunc"), dict) else None  # numpy 2 caches a ufunc per argument count
    return _bare, (type(v),), {**d, "_ufunc": empty}, None, None, _set_dict


def _reduce_ufunc(u):
    # A ufunc `np.frompyfunc(f, nin, nout[, identity=])` made (`np.vectorize` caches one) names no module
    # attribute, so numpy's own reduction (by name) cannot save it; its C fields, as its traversal shows them,
    # are the function, the identity when one was given, and its (empty) attribute dict. Made again from them,
    # it must show the same name, arity, loops and identity; any other ufunc is numpy's to pickle.
    import gc

    parts = gc.get_referents(u)
    f = parts[0] if parts else None
    if not callable(f) or isinstance(f, type(u)) or parts[-1] != {} or len(parts) not in (2, 3):
        return NotImplemented
    kw = {"identity": parts[1]} if len(parts) == 3 else {}
    again = sys.modules["numpy"].frompyfunc(f, u.nin, u.nout, **kw)
    if (again.__name__, again.types, again.identity, gc.get_referents(again)[1:-1]) != \
            (u.__name__, u.types, u.identity, parts[1:-1]):
        return NotImplemented
    return _frompyfunc, (f, u.nin, u.nout, kw)


def _frompyfunc(f, nin, nout, kw):
    import numpy as np

    return np.frompyfunc(f, nin, nout, **kw)


def _reduce_array_converter(c):
    # numpy's `_array_converter(*args)` (`apply_along_axis`, `np.quantile`... hold one in a local while they
    # call back) keeps each argument and its conversion to an array; it shows the array, or the argument itself
    # when that is a Python scalar (whose weak promotion it keeps). Made again from what it shows, it is the same
    # when the argument was an array or anything without an `__array_wrap__` of its own (a list): checked by
    # making it and comparing what it would do. Otherwise (a pandas Series, whose wrap makes a Series) the
    # instant is waited out, as before.
    t = type(c)
    shown = tuple(c)
    again = t(*shown)
    probe = c.as_arrays(subok=True, pyscalars="convert")[0] if shown else None
    try:
        same = again.scalar_input == c.scalar_input and _outcome(again.result_type) == _outcome(c.result_type) \
            and type(again.wrap(probe, to_scalar=False)) is type(c.wrap(probe, to_scalar=False))
    except Exception:  # noqa: BLE001 - a wrap that fails: not provably the same
        same = False
    if not same:
        raise TypeError(f"cannot pickle {t.__qualname__!r} object made from arguments it does not show")
    return t, shown


def _outcome(f):
    try:
        return f()
    except Exception as e:  # noqa: BLE001 - the same failure is the same outcome
        return type(e)


# --- logging's file handlers -----------------------------------------------------------------------------------
# A FileHandler holds its log file open for writing, which no checkpoint can carry: it is saved with its stream
# flushed and dropped, as a handler made with `delay=True` is before its first record, so the restored handler
# opens the file again at its first record, appending (mode "w" would empty what it wrote). On another node the
# lines after the move go to the file of that path there.
def _reduce_file_handler(h):
    st = dict(vars(h))
    stream = st.get("stream")
    if stream is not None:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        st["stream"] = None
        if st.get("mode", "a").startswith("w"):
            st["mode"] = "a" + st["mode"][1:]
    return _bare, (type(h),), st, None, None, _set_dict


# --- threadpoolctl ----------------------------------------------------------------------------------------------
# scikit-learn runs KMeans's iterations inside `with controller.limit(limits=1, user_api="blas")`: the controller
# holds the loaded BLAS/OpenMP libraries as ctypes handles, which mean nothing in another process. A controller
# is made again in the restoring process over the same libraries (by path, in the same order); a limiter is made
# again on it with its limits set there too (the thread counts are the process's own), keeping the counts it
# will put back on exit and the entered-limiters count of the job's thread, as they were.
def _reduce_threadpool_controller(c):
    return _threadpool_controller, ([lc.filepath for lc in c.lib_controllers],)


def _threadpool_controller(paths):
    import threadpoolctl

    full = threadpoolctl.ThreadpoolController()
    by_path = {lc.filepath: lc for lc in full.lib_controllers}
    return threadpoolctl.ThreadpoolController._from_controllers([by_path[p] for p in paths if p in by_path])


def _reduce_threadpool_limiter(lim):
    import threadpoolctl

    original = {lc.filepath: info for lc, info in zip(lim._controller.lib_controllers, lim._original_info)}
    entered = threadpoolctl.CONTROLLING_THREAD_OWNERSHIP.count
    return _threadpool_limiter, (type(lim), lim._controller, lim._limits, lim._user_api, original, entered)


def _threadpool_limiter(t, controller, limits, user_api, original, entered):
    import threadpoolctl

    lim = t.__new__(t)
    lim._controller, lim._limits, lim._user_api = controller, limits, user_api
    now = controller.info()
    lim._original_info = [original.get(lc.filepath, info) for lc, info in zip(controller.lib_controllers, now)]
    lim._set_threadpool_limits()
    threadpoolctl.CONTROLLING_THREAD_OWNERSHIP.count = entered
    return lim


# Saved as its class and whole instance state, not by its own pickling (the pickler's _reduce_plain_instance).
WHOLE = "whole"

BY_NAME = {
    ("pandas._libs.internals", "BlockPlacement"): _reduce_block_placement,
    ("pandas._libs.internals", "BlockValuesRefs"): _reduce_block_values_refs,
    ("pandas._libs.internals", "Block"): _reduce_block,
    ("pandas._libs.internals", "BlockManager"): _reduce_block_manager,
    ("pandas.core.internals.managers", "SingleBlockManager"): WHOLE,
    ("builtins", "ImagingCore"): _reduce_imaging_core,  # Pillow's C type names no module
    ("PIL.ImageDraw", "ImageDraw"): _reduce_image_draw,
    ("_struct", "Struct"): _reduce_struct,
    ("_struct", "unpack_iterator"): _reduce_unpack_iterator,
    ("re", "Pattern"): _reduce_pattern,
    ("decimal", "ContextManager"): _reduce_decimal_manager,
    ("json.decoder", "JSONDecoder"): _reduce_json_decoder,
    ("_csv", "reader"): _reduce_csv_reader,  # the reader's and its dialect's C fields (files.py)
    ("_csv", "Dialect"): _reduce_csv_dialect,
    ("_csv", "writer"): _reduce_csv_writer,  # the write callable and dialect its traversal shows (files.py)
    ("numpy", "vectorize"): _reduce_vectorize,
    ("numpy", "ufunc"): _reduce_ufunc,
    ("numpy._core._multiarray_umath", "_array_converter"): _reduce_array_converter,
    ("logging", "FileHandler"): _reduce_file_handler,
    ("threadpoolctl", "ThreadpoolController"): _reduce_threadpool_controller,
    ("threadpoolctl", "_ThreadpoolLimiter"): _reduce_threadpool_limiter,
    # cloudpickle saves a WeakSet as its members alone: one being iterated came back without the guard its
    # `__iter__` had entered (`_iterating`), and the loop's end raised KeyError in the guard's `__exit__`.
    ("_weakrefset", "WeakSet"): WHOLE,
}


def library_reducer(t):
    """The reducer of an extension type listed above (or of a subclass of one), or None."""
    for b in getattr(t, "__mro__", ()):
        r = BY_NAME.get((getattr(b, "__module__", None), getattr(b, "__qualname__", None)))
        if r is not None:
            return r
    return None
