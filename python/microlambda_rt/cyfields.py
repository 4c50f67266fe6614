"""Cython's own utility types: typed memoryviews and Cython arrays.

Every Cython extension module (or, since Cython 3.1, one shared ``_cyutility`` module per package) defines a
``memoryview`` class, its ``_memoryviewslice`` subclass (what a typed-memoryview field or variable gives to
Python) and an ``array`` class (what a typed memoryview's ``copy()`` allocates). None of them can pickle itself
("no default __reduce__ due to non-trivial __cinit__"). Cython's generated pickling of a cdef class saves a
typed-memoryview field as such a memoryview, so every object holding one could not be saved at all:
scikit-learn's histogram gradient boosting keeps a ``Splitter`` and a ``HistogramBuilder`` in the
``TreeGrower`` that its ``fit`` holds for its whole boosting loop, and the tree nodes hold ``_memoryviewslice``
views of the splitter's partition, so every request waited for ``fit`` to return.

Each is saved as the object it views (shared with the rest of the state, so writes still reach every view of
it) and made again by the same utility module's classes, found by identity among the loaded modules (the
classes of different packages have the same names): a memoryview of a whole object as that object and whether
it writes; a slice as that object and the index slices that give its data address, shape and strides (checked
at the capture by making it again); a Cython array as its shape, item size, format, order and bytes. A memoryview
field of a restored object gives, as its ``base``, the Cython memoryview its own pickling saved, viewing the
same restored array (the live one gave the array).
"""

import ctypes
import sys

_RECORDS_RO, _WRITABLE = 0x1C, 0x1  # PyBUF_RECORDS_RO, PyBUF_WRITABLE


def reducer(t):
    """How the pickler saves instances of `t` before anything else, or None: not one of Cython's utility
    types."""
    if not t.__module__.endswith("_cyutility") and t.__module__ != "View.MemoryView":
        return None
    return {"_memoryviewslice": reduce_memoryview_slice, "memoryview": reduce_cython_memoryview,
            "array": reduce_cython_array}.get(t.__qualname__)


def _utility_module(t, attr):
    """The name of a Cython utility module in sys.modules whose class `attr` is `t` (each package that ships one
    has its own classes of the same names); found once per class (a tree's nodes hold hundreds of slices)."""
    name = _MODULE_OF.get(t)
    if name is None or getattr(sys.modules.get(name), attr, None) is not t:
        name = _MODULE_OF[t] = next((n for n, m in list(sys.modules.items())
                                     if (getattr(m, "__dict__", None) or {}).get(attr) is t
                                     and "_memoryviewslice" in m.__dict__), None)
    return name


_MODULE_OF = {}


def _utility(mod):
    return sys.modules.get(mod) or __import__("importlib").import_module(mod)


def reduce_cython_array(a):
    """A Cython array (what a typed memoryview's ``copy()`` allocates), as its shape, item size, format, order
    and bytes; made again by the same utility module's ``array``. One of Python objects is refused."""
    mod = _utility_module(type(a), "array")
    m = memoryview(a)
    if mod is None or "O" in m.format or not (m.c_contiguous or m.f_contiguous):
        raise TypeError("cannot pickle a Cython array of objects, or of a utility module not found")
    return _made_array, (mod, m.shape, m.itemsize, m.format, "c" if m.c_contiguous else "fortran",
                         ctypes.string_at(_data_of(a), m.nbytes))


def _made_array(mod, shape, itemsize, fmt, mode, data):
    a = _utility(mod).array(shape, itemsize, fmt, mode)
    ctypes.memmove(_data_of(a), data, len(data))
    return a


def _data_of(obj):
    """The address of the first byte of `obj`'s buffer (a Py_buffer got and released through ctypes)."""
    b = _PyBuffer()
    if ctypes.pythonapi.PyObject_GetBuffer(ctypes.py_object(obj), ctypes.byref(b), _RECORDS_RO) != 0:
        raise TypeError("no buffer")
    try:
        return b.buf or 0
    finally:
        ctypes.pythonapi.PyBuffer_Release(ctypes.byref(b))


class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


def _shape_of(view):
    return _data_of(view), tuple(view.shape), tuple(view.strides)


def _slices_for(base_view, target):
    """An index of `base_view` (a Cython memoryview of the base) that gives `target`'s (data, shape, strides):
    the offset split along the base's largest strides first, each of the target's dimensions taken by the next
    base dimension whose stride divides its own, the others indexed by an integer. Checked by the caller."""
    data, shape, strides = target
    b_data, b_shape, b_strides = _shape_of(base_view)
    off = data - b_data
    starts = [0] * len(b_shape)
    for j in sorted(range(len(b_shape)), key=lambda j: -b_strides[j]):
        if b_strides[j] > 0 and off >= 0:
            starts[j], off = divmod(off, b_strides[j])
    index, j = [], 0
    for i in range(len(shape)):
        while j < len(b_shape) and not (b_strides[j] and strides[i] % b_strides[j] == 0):
            index.append(starts[j])
            j += 1
        if j == len(b_shape):
            return None
        step = strides[i] // b_strides[j] or 1
        stop = starts[j] + step * shape[i]
        index.append(slice(starts[j], stop if stop >= 0 else None, step))
        j += 1
    index += starts[j:]
    return tuple(index)


def _flags(v):
    """The buffer request a memoryview like `v` is made with: read-only when `v` is (a ``const`` view of a
    writable array stays one that refuses writes). One of Python objects is refused."""
    m = memoryview(v)
    if "O" in m.format or m.suboffsets:
        raise TypeError("cannot pickle a Cython memoryview of Python objects or with suboffsets")
    return _RECORDS_RO if m.readonly else _RECORDS_RO | _WRITABLE


def reduce_memoryview_slice(v):
    """A typed memoryview, as the object it views and the index slices of it that give its data address, shape
    and strides (made again at the capture, to check)."""
    mod = _utility_module(type(v), "_memoryviewslice")
    base = v.base
    if mod is None or base is None:
        raise TypeError("cannot pickle a Cython memoryview whose utility module or base object is not found")
    want, flags = _shape_of(v), _flags(v)
    idx = _slices_for(_sliced(mod, base, flags, None), want)
    if idx is None or _shape_of(_sliced(mod, base, flags, idx)) != want:
        raise TypeError("cannot pickle a Cython memoryview that is not a slice of the object it views")
    return _sliced, (mod, base, flags, idx)


def reduce_cython_memoryview(v):
    """A Cython memoryview of a whole object (what Cython's pickling of a cdef class saves a typed-memoryview
    field as), as that object and whether it writes; made again by the same utility module's ``memoryview``
    (checked at the capture)."""
    mod = _utility_module(type(v), "memoryview")
    base = v.base
    if mod is None or base is None:
        raise TypeError("cannot pickle a Cython memoryview whose utility module or object is not found")
    flags = _flags(v)
    if _shape_of(_cython_memoryview(mod, base, flags)) != _shape_of(v):
        raise TypeError("cannot pickle a Cython memoryview that does not view the whole of its object")
    return _cython_memoryview, (mod, base, flags)


def _cython_memoryview(mod, base, flags):
    return _utility(mod).memoryview(base, flags, False)


def _sliced(mod, base, flags, idx):
    whole = _utility(mod).memoryview(base, flags, False)
    return whole[idx] if idx is not None else whole[(slice(None),) * whole.ndim]
