"""Reducers for objects that are live views of other objects (dict and ``OrderedDict`` views and iterators,
mappingproxies, memoryviews, ``re.Match``, numpy views) and the helpers that take the view again on restore.

Plain pickling (or cloudpickle) turns a dict view or a mappingproxy into a view of a copy, a dict iterator into
an iterator over a snapshot, and a memoryview into bytes: each a silent wrong resume once the job mutates the
original. They are saved as their base object (pickled once, shared) plus how to take the view again.
``_LIVE`` maps each such type to its reducer.
"""

import collections
import gc
import itertools
import operator
import re
import sys
import types

from .base import RestoreError

_DICT_VIEWS = {}
_DICT_ITERS = {}
for _kind in ("keys", "values", "items"):
    _DICT_VIEWS[type(getattr({}, _kind)())] = _kind
    _DICT_VIEWS[type(getattr(collections.OrderedDict(), _kind)())] = _kind
    _DICT_ITERS[type(iter(getattr({}, _kind)()))] = (_kind, False)
    _DICT_ITERS[type(reversed(getattr({}, _kind)()))] = (_kind, True)
del _kind


def _referent(obj, kind):
    """The one object of type `kind` that `obj` holds (its base), or None."""
    found = [r for r in gc.get_referents(obj) if isinstance(r, kind)]
    return found[0] if len(found) == 1 else None


def _reduce_dict_view(view, kind):
    d = _referent(view.mapping, dict)
    if d is None or type(getattr(d, kind)()) is not type(view):
        raise TypeError(f"cannot pickle a {type(view).__name__} of a {type(d).__name__} (not a plain dict view)")
    return _dict_view, (d, kind)


def _dict_view(d, kind):
    return getattr(d, kind)()


def _reduce_mappingproxy(proxy):
    m = _referent(proxy, dict)
    if m is None:
        raise TypeError("cannot pickle a mappingproxy whose mapping is not a dict")
    return types.MappingProxyType, (m,)


def _yields(d, kind, rev, skip, rest):
    """Whether an iterator over `d` of `kind`, `skip` entries in, would still yield exactly `rest` (the very
    objects; an items pair compared by its parts). Compared in C: a dict of a million entries is read twice."""
    cls = _view_class(d)
    keys = list(reversed(cls.keys(d)) if rev else cls.keys(d))[skip:]
    if len(keys) != len(rest):
        return False
    if kind == "keys":
        return all(map(operator.is_, keys, rest))
    vals = list(reversed(cls.values(d)) if rev else cls.values(d))[skip:]
    if kind == "values":
        return all(map(operator.is_, vals, rest))
    try:
        return all(map(operator.is_, keys, map(_FIRST, rest))) and all(map(operator.is_, vals, map(_SECOND, rest)))
    except (TypeError, IndexError):  # not pairs
        return False


_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)


def _view_class(d):
    """Whose views iterate `d` in its own order: an OrderedDict's, else a dict's."""
    return collections.OrderedDict if isinstance(d, collections.OrderedDict) else dict


def _advance(it, n):
    """Take `n` items from `it`, at C speed."""
    collections.deque(itertools.islice(it, n), maxlen=0)


def _reduce_dict_iter(it, kind, rev):
    # What it still yields, as native pickling would see it.
    try:
        rest = it.__reduce__()[1][0]
    except RuntimeError:
        # The dict changed size since the iterator was made (networkx's max-flow keeps an iterator over each
        # node's edges, then removes the saturated ones): its next `next()` raises, and every one after.
        d = _referent(it, dict)
        if d is None:
            raise
        return _changed_dict_iter, (d, kind, rev)
    d = _referent(it, dict)
    if d is None:  # exhausted: nothing more to yield
        return iter, ((),)
    skip = len(d) - len(rest)
    if not _yields(d, kind, rev, skip, rest):
        raise TypeError(f"cannot pickle a {type(it).__name__} whose position cannot be taken again")
    return _dict_iter, (d, kind, rev, skip, len(rest))


def _dict_iter(d, kind, rev, skip, rest):
    """An iterator over a dict's (or an OrderedDict's) view of `kind`, `skip` entries in; `rest` entries must be
    left (None: not checked)."""
    view = getattr(_view_class(d), kind)(d)
    it = reversed(view) if rev else iter(view)
    _advance(it, skip)
    if rest is not None and len(it.__reduce__()[1][0]) != rest:
        raise RestoreError(f"a dict iterator cannot be rebuilt: {rest} items were left, the dict has {len(d)}")
    return it


def _library_dict_iter(d, kind, rev, skip, items):
    """An iterator over a dict a library module binds (saved by reference, src/py/libstate.rs): as `_dict_iter`
    where the restoring process's dict yields, `skip` entries in, the entries `items` it had left at the
    checkpoint; else over those entries as they were (a registry filled in another order, or to another size,
    by the restoring process: its position would name other entries)."""
    view = getattr(dict, kind)(d)
    now = list(reversed(view)) if rev else list(view)
    if len(now) - skip == len(items) and all(map(_same_item, now[skip:], items)):
        it = reversed(view) if rev else iter(view)
        _advance(it, skip)
        return it
    return iter(items)


def _same_item(a, b):
    """Whether an item the restoring process has is the one a checkpoint saved: the same object (saved by
    reference), or an equal one of the same type (saved by value)."""
    if a is b:
        return True
    try:
        return type(a) is type(b) and (a == b) is True
    except Exception:  # noqa: BLE001 - a comparison that raises (numpy arrays) tells them apart
        return False


def _changed_dict_iter(d, kind, rev):
    """An iterator over `d` (a dict's own view of `kind`, as the one saved) made while `d` had one entry more
    than now: as the one saved, whose dict changed size under it, `next()` raises RuntimeError ("dictionary
    changed size during iteration") and keeps raising. (Should the job bring the dict back to the size the
    saved iterator was made at, CPython's would go on from its old position, this one after the entries the
    dict holds now.)"""
    view = getattr(dict, kind)(d)
    key = _Absent()
    dict.__setitem__(d, key, None)
    try:
        it = reversed(view) if rev else iter(view)
        _advance(it, len(d))  # past every entry
    finally:
        dict.__delitem__(d, key)
    return it


class _Absent:
    """A key no one else holds (hashed by identity)."""

    __slots__ = ()


def _reduce_odict_iter(it):
    # One iterator type for keys, values and items, forwards or backwards: the kind is told by what it still
    # yields; where two kinds would yield the same objects (keys equal to values), it cannot be told: refused.
    rest = it.__reduce__()[1][0]
    od = _referent(it, collections.OrderedDict)
    if od is None:
        return iter, ((),)
    skip = len(od) - len(rest)
    found = {(kind, rev) for kind in ("keys", "values", "items") for rev in (False, True)
             if _yields(od, kind, rev, skip, rest)}
    if not rest:
        found = {("keys", False)}  # at the end: the same future for every kind
    elif len(found) > 1:
        # The iterator holds the key it yields next: keep the candidates that agree.
        held = [r for r in gc.get_referents(it) if r is not od]
        keys = list(od)
        found = {(k, r) for k, r in found if any(h is keys[len(od) - 1 - skip if r else skip] for h in held)}
    if len(found) != 1:
        raise TypeError("cannot pickle an OrderedDict iterator whose kind or direction cannot be told")
    kind, rev = found.pop()
    return _dict_iter, (od, kind, rev, skip, len(rest))


def _reduce_memoryview(m):
    base = m.obj
    if base is None:
        raise TypeError("cannot pickle a released memoryview")
    whole = memoryview(base)
    if not (m.c_contiguous and whole.c_contiguous and whole.nbytes == m.nbytes):
        raise TypeError(f"cannot pickle a memoryview of part of a {type(base).__name__}")
    return _make_memoryview, (base, m.format, m.shape, m.readonly)


def _make_memoryview(base, fmt, shape, readonly):
    m = memoryview(base)
    if m.format != fmt or m.shape != shape:
        m = m.cast("B").cast(fmt, shape)
    return m.toreadonly() if readonly and not m.readonly else m


def _reduce_match(m):
    # A match is what its pattern finds again in the same string from the same position.
    return _remake_match, (m.re, m.string, m.pos, m.endpos, m.regs, m.lastindex)


def _remake_match(pattern, string, pos, endpos, regs, lastindex):
    sc = pattern.scanner(string, pos, endpos)
    while True:
        m = sc.search()
        if m is None or m.regs[0][0] > regs[0][0]:
            raise RestoreError(f"a re.Match of {pattern.pattern!r} cannot be found again")
        if m.regs == regs and m.lastindex == lastindex:
            return m


def _reduce_ndarray(a, np):
    # A numpy view (a row, a column, a reshape, a transpose) is saved as the array or buffer that owns the
    # memory plus where it looks into it, so writes through it still reach every other view after a restore.
    # An array that owns its memory takes numpy's own path (out-of-band buffers).
    # A view of a subclass whose instances keep their state in the array and their __dict__ (`np.recarray`,
    # `np.matrix`, a masked array, whose mask is itself often a view of another's) is the same view taken again
    # as that class, its __dict__ then set back exactly (its attributes saved with the rest of the state, so a
    # mask that was a view is one again); so is such an instance that owns its memory (`ma.copy()`), whose own
    # pickling dropped attributes (a masked array's hard mask) and copied its mask.
    t = type(a)
    state = None
    if t is not np.ndarray:
        if not _state_in_dict(t, np):
            if a.base is None or a.size == 0:
                return NotImplemented
            raise TypeError(f"cannot pickle a view of a {t.__module__}.{t.__qualname__}, whose instances keep "
                            "state outside the array and their __dict__")
        state = getattr(a, "__dict__", None)  # set back even when empty: `.view(cls)` may have filled it
    if a.size == 0 or a.base is None:
        # A subclass's own pickling (MaskedArray's) may drop attributes: saved whole here too, even when busy.
        return NotImplemented if t is np.ndarray else _reduce_owning_subclass(a, t, state, np)
    root = a
    while True:
        b = root.base
        if not isinstance(b, np.ndarray) and type(b).__name__ == "DummyArray":  # made by as_strided (object views)
            b = getattr(b, "base", None)
        if not isinstance(b, np.ndarray) or type(b) is not np.ndarray and not _state_in_dict(type(b), np):
            break
        root = b
    address = _ADDRESS[0] or _address_reader(np)
    if root.base is None:
        owner, start = root, address(root)
    else:
        owner = root.base.obj if isinstance(root.base, memoryview) else root.base
        if type(owner) not in (bytes, bytearray):
            if isinstance(owner, np.ndarray) or state and root is not a and not isinstance(a, np.memmap):
                # A subclass keeping state outside its __dict__ owns the memory; or a masked array (say) over a
                # memory-mapped file: copied apart from the array it views, a write through one would not
                # reach the other. (A slice of a memory-mapped file is saved as a copy, as the file is.)
                raise TypeError(f"cannot pickle a view of a {type(root).__name__} over a {type(owner).__name__} "
                                "as a view")
            return NotImplemented  # memory-mapped files and foreign buffers: saved as a copy
        start = np.frombuffer(owner, np.uint8).__array_interface__["data"][0] if len(owner) else 0
    if owner is a:
        return NotImplemented
    offset = address(a) - start
    if a.dtype.hasobject:
        # Object arrays cannot be made over a buffer; a view is taken again with as_strided over the owner
        # (pandas keeps its string columns as views into object blocks).
        if not isinstance(owner, np.ndarray) or owner.dtype != a.dtype or offset % a.itemsize:
            raise TypeError("cannot pickle a view into a numpy object array that is not an array's own memory")
        r = _np_object_view, (owner, a.shape, a.strides, offset // a.itemsize, a.flags.writeable)
    else:
        r = _np_view, (owner, a.dtype, a.shape, a.strides, offset, a.flags.writeable)
    if t is np.ndarray:
        return r
    return _np_subclass_view, (t,) + r, state, None, None, _set_dict


def _address_reader(np):
    """How to read where an array's data starts (numpy's `PyArray_DATA`): the `data` field of numpy's public
    `PyArrayObject_fields`, the first after the object header, read in place, where probe arrays show it holds
    what `__array_interface__` says (which builds a dict of six entries per call: two per view saved, most of
    the time a state of many small views took to pickle); else through `__array_interface__`."""
    import ctypes

    off = object.__basicsize__
    at = ctypes.c_void_p.from_address

    def fast(a):
        return at(id(a) + off).value or 0

    def slow(a):
        return a.__array_interface__["data"][0]

    whole = np.arange(12.0).reshape(3, 4)
    probes = (whole, whole[1:, 2:], whole.T[3], np.zeros(0), np.ndarray.view(whole[1], np.recarray))
    ok = np.ndarray.__basicsize__ >= off + ctypes.sizeof(ctypes.c_void_p) and all(fast(p) == slow(p) for p in probes)
    _ADDRESS[0] = fast if ok else slow
    return _ADDRESS[0]


_ADDRESS = [None]  # the reader `_address_reader` chose, once numpy is loaded


def _state_in_dict(t, np):
    """Whether instances of the ndarray subclass `t` keep all their state in the array and their __dict__:
    every class between it and ndarray is a Python class without slots, adding no C field to ndarray's."""
    ok = _IN_DICT.get(t)
    if ok is None:
        mro = t.__mro__
        ok = np.ndarray in mro and t.__basicsize__ == np.ndarray.__basicsize__ and all(
            c.__flags__ & _HEAPTYPE and "__slots__" not in vars(c) for c in mro[:mro.index(np.ndarray)])
        _IN_DICT[t] = ok
    return ok


_IN_DICT = {}
_HEAPTYPE = 1 << 9


def _reduce_owning_subclass(a, t, state, np):
    """An instance of such a subclass that owns its memory: the memory as numpy pickles a plain array (out of
    band where it is contiguous), taken again as the class, then given its __dict__ (views of it are made over
    it, so writes through them still reach it)."""
    plain = np.ndarray.view(a, np.ndarray)
    r = plain.__reduce_ex__(5)
    return _np_owned_subclass, (t, r[0], r[1], r[2] if len(r) > 2 else None), state, None, None, _set_dict


def _np_owned_subclass(t, make, args, setstate):
    plain = make(*args)
    if setstate is not None:
        plain.__setstate__(setstate)
    return plain.view(t)


def _set_dict(obj, state):
    """Make an instance's __dict__ exactly the saved one (what `.view(cls)`'s `__array_finalize__` put there
    first is dropped)."""
    d = obj.__dict__
    d.clear()
    d.update(state)


def _np_subclass_view(t, make, args):
    return make(*args).view(t)


def _np_view(owner, dtype, shape, strides, offset, writeable):
    np = sys.modules.get("numpy") or __import__("numpy")
    if isinstance(owner, np.ndarray) and not owner.flags.c_contiguous:
        # An array that owns its memory may lay it out in any axis order (numpy keeps the input's order in
        # ufunc results): the buffer is its memory in storage order, the same bytes from the same start.
        flat = np.ndarray.view(owner, np.ndarray).ravel(order="K")
        if not np.shares_memory(flat, owner):
            raise RestoreError("a numpy view's owner does not hold its memory in one block")
        owner = flat
    v = np.ndarray(shape, dtype, buffer=owner, offset=offset, strides=strides)
    if not writeable and v.flags.writeable:
        v.flags.writeable = False
    return v


def _np_object_view(owner, shape, strides, first, writeable):
    np = sys.modules.get("numpy") or __import__("numpy")
    from numpy.lib.stride_tricks import as_strided

    flat = np.ndarray.view(owner, np.ndarray).ravel(order="K")  # the owner's memory in order, itself a view (the owner is contiguous)
    v = as_strided(flat[first:], shape=shape, strides=strides, writeable=writeable)
    return v


def _reduce_void(v, np):
    """A record of a structured array (``row = nodes[i]``) is a view: ``row["count"] = n`` writes into the
    array. Saved as that array (itself saved as a view where it is one) and the index of the record, found
    along the array's strides and checked to give the same memory; numpy's own pickling copied the record, and
    the writes made after a restore were lost (scikit-learn's ``_fill_predictor_arrays`` fills a tree's nodes so:
    the tree came back with zeroed nodes and its prediction looped for ever). A record that owns its memory
    takes numpy's own path."""
    a = v.base
    if not isinstance(a, np.ndarray) or a.dtype != v.dtype or a.size == 0:
        return NotImplemented
    off = np.asarray(v).__array_interface__["data"][0] - a.__array_interface__["data"][0]
    index = [0] * a.ndim
    for i in sorted(range(a.ndim), key=lambda i: -a.strides[i]):
        if a.strides[i] > 0:
            index[i], off = divmod(off, a.strides[i])
    index = tuple(index)
    if off or any(not 0 <= k < n for k, n in zip(index, a.shape)) or type(a[index]) is not type(v) or \
            np.asarray(a[index]).__array_interface__["data"][0] != np.asarray(v).__array_interface__["data"][0]:
        raise TypeError("cannot pickle a numpy record that is not one of its array's records")
    return _np_record, (a, index)


def _np_record(a, index):
    return a[index]


_LIVE = {types.MappingProxyType: _reduce_mappingproxy, memoryview: _reduce_memoryview, re.Match: _reduce_match}
for _t, _kind in _DICT_VIEWS.items():
    _LIVE[_t] = lambda v, _kind=_kind: _reduce_dict_view(v, _kind)
for _t, (_kind, _rev) in _DICT_ITERS.items():
    _LIVE[_t] = lambda it, _kind=_kind, _rev=_rev: _reduce_dict_iter(it, _kind, _rev)
del _t, _kind, _rev
_LIVE[type(iter(collections.OrderedDict()))] = _reduce_odict_iter
