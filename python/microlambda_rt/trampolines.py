"""C trampolines: resuming a frame whose callee was entered from C, where that C keeps no state of its own.

Calling an instance's ``__call__``, a class running ``__init__``, ``functools.partial``, a bound method, a property
or other descriptor, or a Python-defined dunder reached from an instruction (``__getitem__``, ``__next__`` in a
``for`` loop, ``__enter__``...) goes through C that only forwards the call. The caller is stopped at a known
instruction with the callable and its operands still in its value-stack slots (3.11 releases them only after the
C call returns), so the chain is resumed as a plain Python call from the caller's morph to the callee's, followed
by what the trampoline does to the result (an adapt kind of ``morph``). Each case is proved by identity: from the
caller's instruction and operands, the function C would call must be the callee's very function (and its first
argument the object it was called on); anything that cannot be proved stays a wait.

``map(f, xs)`` driven by a ``for`` loop calls ``f`` and returns its result, keeping nothing: resumed as a
``__next__`` is; driven by a consumer or a filler (``any(map(f, xs))``, ``list(map(f, xs))``), resumed as that
call given ``f``'s result (``_fed_by_map``). ``filter(p, xs)`` driven by a ``for`` loop keeps only the item it
passed to ``p``, which ``p`` still holds: resumed as ``p``'s call, then the item or the filter's next one
(``_filtered_by``). C callers that keep state in C locals (``sorted(key=)``,
``sum(gen)``, ``min(key=)``, numpy calling back) are not trampolines: their frames are waited out. Those that fill a new container from a generator (``list(gen)``) are
resumed when the container is found (``_mlrs.held_by_c``).

Size: every proof that the C between two frames keeps nothing of its own, side by side with the C iterators and
consumers it knows, so that a new case is checked against the ones it resembles.
"""

import array
import collections
import dis
import functools
import itertools
import types

from .base import NULL, NotResumable, WaitForReturn, _rs
from .analysis import _origin
from .morph import A_BINOP, A_CMP, A_CONTAINS, A_DISCARD, A_FILTER, A_INIT, A_ITER, A_NEXT, A_PASS
from .ops import (
    BEFORE_WITH, BINARY_OP, BINARY_SUBSCR, CALL, CALL_FUNCTION_EX, CMP_OPS, CMP_SWAPPED, COMPARE_OP, CONTAINS_OP,
    DELETE_FAST, DELETE_SUBSCR,
    FOR_ITER, GET_ITER, KW_NAMES, LOAD_ATTR, LOAD_FAST, LOAD_METHOD, NB_INPLACE, NB_STEMS, PRECALL, STORE_ATTR, STORE_FAST,
    STORE_SUBSCR,
)

_THROUGH_C = frozenset((CALL, CALL_FUNCTION_EX, BINARY_SUBSCR, STORE_SUBSCR, DELETE_SUBSCR, LOAD_ATTR,
                        LOAD_METHOD, STORE_ATTR, FOR_ITER, GET_ITER, BEFORE_WITH, COMPARE_OP, BINARY_OP,
                        CONTAINS_OP))

def _mro_lookup(t, name):
    """What `_PyType_Lookup(t, name)` finds: the first class dict entry along the MRO, or None."""
    for k in t.__mro__:
        d = k.__dict__
        if name in d:
            return d[name]
    return None


_TYPE_CALL = type.__dict__["__call__"]
_OBJECT_GETATTRIBUTE = object.__dict__["__getattribute__"]


def _first_arg(child):
    """The callee's first positional argument (its `self`), or NULL."""
    loc = child.locals
    return loc[0] if child.code.co_argcount and loc else NULL


def _called_by(c, fn, child):
    """How calling `c` from C reaches the Python function `fn` (the callee) with no C state in between:
    None when it does not (provably); else the adapt kind (None: the result passes through) and extra stack items
    the adaptation needs."""
    if c is fn:
        return (None, ())
    t = type(c)
    if t is types.MethodType:  # reached only when a bound method is its own anchor (a callee's argument)
        return (None, ()) if c.__func__ is fn and c.__self__ is _first_arg(child) else None
    if t is functools.partial:
        r = _called_by(c.func, fn, child)
        return r if r is not None and r[0] is None else None
    if t.__name__ == "_ArrayFunctionDispatcher" and t.__module__ == "numpy":
        # numpy's dispatcher: finds no __array_function__ override on plain arguments and calls its Python
        # implementation, whose result it returns as is (numpy/_core/src/multiarray/arrayfunction_override.c).
        return (None, ()) if getattr(c, "_implementation", None) is fn else None
    k = _type_called(c)
    if k is not None:  # type_call: __new__, then __init__ on an instance of the class
        init = _mro_lookup(k, "__init__")
        me = _first_arg(child)
        if init is fn and me is not NULL and isinstance(me, k):
            return (A_INIT, (me,))
        return None
    if isinstance(c, type):
        if _mro_lookup(t, "__call__") is fn and _first_arg(child) is c:  # a metaclass's own __call__
            return (None, ())
        return None
    call = _mro_lookup(t, "__call__")
    if call is fn and _first_arg(child) is c:  # slot_tp_call
        return (None, ())
    return None


_TYPE_GETATTRIBUTE = type.__dict__["__getattribute__"]


def _new_called_by(c, fn, child):
    """The class whose call from C runs the callee as its `__new__`, or None: `type_call` calls `tp_new`, which
    for a class whose `__new__` (along its MRO) is a Python function is `slot_tp_new`: it gets `c.__new__` (a
    metaclass's own `__getattribute__`, or a data descriptor named `__new__` on it, could give another) and calls
    it with `c` first. `c` is the class called, or `super().__call__` in a metaclass's `__call__`: a method-wrapper
    of type's own `__call__` bound to the class (equal to one made afresh: the same slot on the same object),
    which runs `type_call` whatever the metaclass's `__call__` is."""
    c = _type_called(c)
    if c is None:
        return None
    if _mro_lookup(type(c), "__getattribute__") is not _TYPE_GETATTRIBUTE:
        return None
    new = _mro_lookup(c, "__new__")
    meta_new = _mro_lookup(type(c), "__new__")  # ABCMeta's: not a data descriptor, so the class's own is found
    if type(new) is not staticmethod or new.__func__ is not fn or _first_arg(child) is not c or \
            _mro_lookup(type(meta_new), "__set__") is not None:
        return None
    return c


_METHOD_WRAPPER = type(object().__str__)


def _type_called(c):
    """The class that calling `c` runs `type_call` on, or None: a class whose metaclass's `__call__` is type's,
    or `super().__call__` in a metaclass's `__call__` (a method-wrapper of type's `__call__` on the class)."""
    if type(c) is _METHOD_WRAPPER:
        k = c.__self__
        return k if isinstance(k, type) and c == _TYPE_CALL.__get__(k) else None
    return c if isinstance(c, type) and _mro_lookup(type(c), "__call__") is _TYPE_CALL else None


def _kwnames(info, ins):
    """The keyword names of the CALL `ins` (its KW_NAMES before its PRECALL), or ()."""
    idx = info.owner[ins.opu]
    ops = info.ops
    if idx > 1 and ops[idx - 1].op == PRECALL and ops[idx - 2].op == KW_NAMES:
        return info.code.co_consts[ops[idx - 2].arg]
    return ()


class _NewThenInit:
    """A class call resumed inside its Python `__new__`: the caller calls this object with the call's operands
    and what the re-entered `__new__` returned, and gets what `type_call` gives: when the result is an instance
    of the class (by its MRO, as `PyObject_TypeCheck`), the `__init__` of the result's type is called on it with
    the same arguments and must return None. A checkpoint in that `__init__` is resumed in turn (`_in_pass`).
    `nargs`: the call's operand count; `kwnames` None for a CALL_FUNCTION_EX, whose operands are the argument
    tuple and, when `nargs` is 2, the keyword dict (both made exact by the instruction before it called)."""

    __slots__ = ("cls", "kwnames", "nargs")

    def __init__(self, cls, kwnames, nargs):
        self.cls, self.kwnames, self.nargs = cls, kwnames, nargs

    def __call__(self, *args):
        obj = args[-1]
        t = type(obj)
        if self.cls in t.__mro__:
            if self.kwnames is None:
                pos, kwargs = args[0], (args[1] if self.nargs == 2 else {})
            else:
                split = len(args) - 1 - len(self.kwnames)
                pos, kwargs = args[:split], dict(zip(self.kwnames, args[split:-1]))
            init = _mro_lookup(t, "__init__")
            if type(init) is not types.FunctionType:
                init = init.__get__(obj, t)  # slot_tp_init binds what is not a function
                r = init(*pos, **kwargs)
            else:
                r = init(obj, *pos, **kwargs)
            if r is not None:
                raise TypeError(f"__init__() should return None, not '{type(r).__name__}'")
        return obj


def _second_arg(child):
    """The callee's second positional argument, or NULL."""
    loc = child.locals
    return loc[1] if child.code.co_argcount > 1 and len(loc) > 1 else NULL


# Operand types whose sequence concatenation or repetition C tries after the numeric methods decline.
_SEQUENCES = (list, tuple, str, bytes, bytearray, collections.deque, array.array)


def _compared(a, b, op, fn):
    """The adapt kind when the callee is `type(a)`'s comparison method for `a <op> b`, called first: not when
    `type(b)` is a proper subclass of `type(a)` (C then tries `b`'s reflected method first), nor when the
    reflected method is set to None."""
    ta, tb = type(a), type(b)
    if _mro_lookup(ta, CMP_OPS[op][0]) is not fn or ta is not tb and issubclass(tb, ta):
        return None
    if CMP_OPS[CMP_SWAPPED[op]][0] in _dict_keys(tb) and _mro_lookup(tb, CMP_OPS[CMP_SWAPPED[op]][0]) is None:
        return None
    return (A_CMP, op)


def _operated(a, b, op, fn):
    """The adapt kind when the callee is `type(a)`'s Python method for BINARY_OP `op` on (a, b): its in-place
    method (`__isub__`, tried first by an in-place operator) or its forward one, called before `b`'s reflected
    method (so not when `type(b)` is a proper subclass of `type(a)`), and no sequence fallback to follow."""
    ta, tb = type(a), type(b)
    stem = NB_STEMS[op % NB_INPLACE]
    if stem in ("add", "mul") and (isinstance(a, _SEQUENCES) or isinstance(b, _SEQUENCES)):
        return None
    if op >= NB_INPLACE and _mro_lookup(ta, f"__i{stem}__") is fn:
        return (A_BINOP, op, True)
    if _mro_lookup(ta, f"__{stem}__") is not fn or ta is not tb and issubclass(tb, ta):
        return None
    if f"__r{stem}__" in _dict_keys(tb) and _mro_lookup(tb, f"__r{stem}__") is None:
        return None
    return (A_BINOP, op, False)


def _dict_keys(t):
    return {k for c in t.__mro__ for k in c.__dict__}


def _dunder_of(obj, name, fn, child):
    """Whether a slot of type(obj) calls the Python method `name` that is the callee, with obj as self."""
    return _mro_lookup(type(obj), name) is fn and _first_arg(child) is obj


def _named(child, name):
    """Whether the callee's second argument (the attribute name a hook was called with) is `name`."""
    loc = child.locals
    return child.code.co_argcount > 1 and len(loc) > 1 and type(loc[1]) is str and loc[1] == name


def _getattr_calls(owner, name, fn, child):
    """Whether getting `owner.name` (generic attribute lookup, or a Python __getattribute__ / __getattr__) calls
    the callee as its descriptor's getter, __getattribute__ or __getattr__. The hooks must be asked for that very
    name: a C descriptor (pandas' cache_readonly) looking up another attribute of the owner calls __getattr__ too,
    and resuming that call as the caller's own lookup handed the caller its AttributeError."""
    t = type(owner)
    if _dunder_of(owner, "__getattribute__", fn, child) or _dunder_of(owner, "__getattr__", fn, child):
        return _named(child, name)
    if isinstance(owner, type):
        d = _mro_lookup(owner, name)
        meta = _mro_lookup(t, name)
        if meta is not None and (hasattr(type(meta), "__set__") or hasattr(type(meta), "__delete__")):
            d = meta
    else:
        if _mro_lookup(t, "__getattribute__") is not _OBJECT_GETATTRIBUTE:
            return False
        d = _mro_lookup(t, name)
    if d is None:
        return False
    dt = type(d)
    if dt is property:
        return d.fget is fn and _first_arg(child) is owner
    get = _mro_lookup(dt, "__get__")
    return get is fn and _first_arg(child) is d


def _setattr_calls(owner, name, fn, child):
    """Whether setting `owner.name` calls the callee (a property's setter, a descriptor's __set__, __setattr__)."""
    if _dunder_of(owner, "__setattr__", fn, child):
        return _named(child, name)
    d = _mro_lookup(type(owner), name)
    if d is None:
        return False
    if type(d) is property:
        return d.fset is fn and _first_arg(child) is owner
    return _mro_lookup(type(d), "__set__") is fn and _first_arg(child) is d


def _anchor(info, ins, d):
    """The stack slot whose object the trampoline was called on, checked by address before anything is read."""
    op = ins.op
    if op == CALL:
        return d - ins.arg - 1
    if op == CALL_FUNCTION_EX:
        return d - 3 - (ins.arg & 1) + 1
    if op in (BINARY_SUBSCR, STORE_SUBSCR, DELETE_SUBSCR, COMPARE_OP, BINARY_OP):
        return d - 2
    return d - 1  # LOAD_ATTR, LOAD_METHOD, STORE_ATTR (owner), FOR_ITER (iterator), GET_ITER (iterable), CONTAINS_OP


def _anchored(fr, slot, child):
    """Whether the anchor slot holds an object the callee holds alive: its function, its first or second argument,
    the class of its first argument (a class running __init__), or what its module binds under its name (a C
    wrapper that replaced it there, as numpy's dispatchers do)."""
    a = fr.slot_id(slot)
    loc = child.locals
    n = child.code.co_argcount
    fn = child.func
    alive = [fn] + [loc[i] for i in range(min(n, 2, len(loc))) if loc[i] is not NULL]
    if type(fn) is types.FunctionType and fn.__globals__.get(fn.__name__) is not None:
        alive.append(fn.__globals__[fn.__name__])
    if n and loc and loc[0] is not NULL:
        alive.append(type(loc[0]))
    if any(id(o) == a for o in alive):
        return True
    # A bound method made for the call (`obj.m(*args, **kwargs)`, or one held in a variable): alive when the
    # slot still holds a live method object of the callee's very function and first argument, read word by word
    # without a reference (`_rs.method_parts`: a freed slot is refused).
    first = loc[0] if n and loc and loc[0] is not NULL else NULL
    if first is NULL:
        return False
    if _rs.method_parts(a) == (id(fn), id(first)):
        return True
    # `super().__call__(...)` in a metaclass's `__call__` running a class's `__new__` (the class first) or its
    # `__init__` (an instance first): a method-wrapper of type's `__call__` on the class, read the same way.
    return _rs.object_parts(a, _METHOD_WRAPPER) in ((id(_TYPE_CALL), id(first)), (id(_TYPE_CALL), id(type(first))))


def _entering(fr, d, child):
    """Whether the callee is a Python `__enter__` run by BEFORE_WITH: CPython looks up `__enter__` and `__exit__`,
    puts the bound `__exit__` where the manager was, then calls `__enter__`, whose result it pushes. So the slot
    must hold a live bound method of the manager's own `__exit__` function on the manager (read word by word,
    `_rs.method_parts`), and the callee must be the manager's `__enter__`. The caller resumes after BEFORE_WITH
    with that slot as it is and the callee's result above it."""
    me = _first_arg(child)
    if me is NULL or _mro_lookup(type(me), "__enter__") is not child.func:
        return False
    exit_fn = _mro_lookup(type(me), "__exit__")
    return type(exit_fn) is types.FunctionType and _rs.method_parts(fr.slot_id(d - 1)) == (id(exit_fn), id(me))


# C iterators that call a function on the items they pull and return its result, keeping nothing of their own
# once it returns (`map_next`, `starmap_next`): the type, which of its first two fields is the function, and
# which holds what it pulls from (a tuple of iterators for `map`).
_MAPPERS = ((map, 1, 0), (itertools.starmap, 0, 1))


def _mapped_by(addr, child):
    """Whether the word `addr` (the iterator slot of a FOR_ITER) is a live `map` or `itertools.starmap` whose
    function is the callee's: the function itself, or a bound method of it on the callee's first argument, and
    whose sources call no Python code from C (`_sources_quiet`: else the callee may be their call, not the
    map's). Read word by word (`_rs.object_parts`): at a loop's end FOR_ITER releases the iterator while its
    slot still names it, and a finalizer run then must not read it."""
    fn = child.func
    for t, field, source in _MAPPERS:
        parts = _rs.object_parts(addr, t)
        if parts is None:
            continue
        f = parts[field]
        if f != id(fn):
            first = _first_arg(child)
            if first is NULL or _rs.method_parts(f) != (id(fn), id(first)):
                return False
        return _sources_quiet(addr, t, parts[source])
    return False


def _quiet_types():
    """Iterators whose `__next__` calls no Python code from C: the builtin containers', range's (what they yield
    is already made), and generators (the Python code they run is a frame of its own in the chain, between the
    loop and any function it calls)."""
    import collections

    samples = ([], (), range(1), range(1 << 64), "", "\u00e9", b"", bytearray(), {}, {}.values(), {}.items(), set(),
               frozenset(), collections.deque())
    return tuple({type(iter(x)) for x in samples} | {type(reversed(x)) for x in ([], range(1), {}, {}.values(),
                                                                                    {}.items())}
                 | {types.GeneratorType})


_QUIET = _quiet_types()


def _quiet(it, depth=0):
    """Whether pulling from `it` calls no Python code from C: a `_QUIET` iterator, or `zip`/`enumerate` of such
    (nested up to eight deep)."""
    t = type(it)
    if t in _QUIET:
        return True
    if depth < 8 and (t is zip or t is enumerate):
        args = it.__reduce__()[1]
        return all(_quiet(s, depth + 1) for s in (args if t is zip else args[:1]))
    return False


def _sources_quiet(addr, t, source):
    """Whether the live C iterator of type `t` at `addr` (a `map`, `starmap`, `filter` or `filterfalse` whose
    function is the callee), whose field `source` was read, pulls its items from iterators that call no Python
    code from C: else the callee may have been called by one of those (`map(f, map(f, xs))`, `filter(p, map(p,
    xs))`), on an item that is not this iterator's, and resuming it as this iterator's call was wrong. The
    source is read word by word first (held by the live iterator, so alive: one `_QUIET` iterator, or a map's
    tuple of one); else the iterator is found among the collector's objects (`_rs.tracked_at`, one walk) and
    its sources taken from its own `__reduce__`."""
    if t is map:
        tup = _rs.object_parts(source, tuple)
        source = tup[1] if tup is not None and tup[0] == 1 else 0
    if source and any(_rs.object_parts(source, q) is not None for q in _QUIET):
        return True
    it = _rs.tracked_at([addr])[0]
    if type(it) is not t:
        return False
    args = it.__reduce__()[1]
    return all(_quiet(s) for s in args[1:])


# C iterators that call a predicate on each item they pull and, once it returns, give the item or pull the next
# (`filter_next`, `filterfalse_next`): the type (its function in its first field, its source in the second) and
# whether a false result keeps the item.
_FILTERS = ((filter, False), (itertools.filterfalse, True))

_REBINDS = {}  # code -> the indices of its positional parameters that it stores to, deletes, or keeps in a cell


def _rebinds(code):
    r = _REBINDS.get(code)
    if r is None:
        cells = set(code.co_cellvars)
        r = frozenset(i.arg for i in dis.get_instructions(code) if i.opcode in (STORE_FAST, DELETE_FAST)) | \
            frozenset(k for k, name in enumerate(code.co_varnames[:code.co_argcount]) if name in cells)
        _REBINDS[code] = r
    return r


def _filtered_by(addr, child):
    """(invert, item) when the word `addr` (the iterator slot of a FOR_ITER) is a live `filter` or
    `itertools.filterfalse` whose predicate is the callee's function (read word by word, as `_mapped_by`
    reads a map) and whose source calls no Python code from C (`_sources_quiet`); else None. The item the
    filter passed is the callee's parameter 0 (a function) or 1 (a bound method of it, on the callee's first
    argument), still in it when its code never rebinds or deletes that parameter nor keeps it in a cell
    (the original code's, for a morph: its prologue stores every local)."""
    fn = child.func
    for t, invert in _FILTERS:
        parts = _rs.object_parts(addr, t)
        if parts is None:
            continue
        k = 0
        if parts[0] != id(fn):
            first = _first_arg(child)
            if first is NULL or _rs.method_parts(parts[0]) != (id(fn), id(first)):
                return None
            k = 1
        code = _origin(child.code)[0].code
        loc = child.locals
        if code.co_argcount <= k or len(loc) <= k or loc[k] is NULL or k in _rebinds(code):
            return None
        return (invert, loc[k]) if _sources_quiet(addr, t, parts[1]) else None
    return None


def _partial_of_one(info, fr, ins, d, child):
    """Whether the callee was called by a `functools.partial` of it with one argument, held in a local of the
    caller (`f = partial(work, 3); f(n)`): calling such a partial with the vectorcall offset, C writes that
    argument into the callable's own stack slot for the length of the call (partial_vectorcall), so the slot
    holds the callee's first argument, not the partial. The partial is found where the caller loaded it from
    (the LOAD_FAST that pushed that slot on every path) and checked to be exactly that."""
    loc = child.locals
    if not child.code.co_argcount or not loc or loc[0] is NULL:
        return False
    slot = d - ins.arg - 1
    if fr.slot_id(slot) != id(loc[0]) or fr.slot_id(slot - 1) != 0:  # a plain call: NULL below the callable
        return False
    src = info.pushed_by(ins.opu, slot)
    if src is None or src.op != LOAD_FAST:
        return False
    p = fr.locals[src.arg]
    return type(p) is functools.partial and len(p.args) == 1 and not p.keywords and p.func is child.func \
        and p.args[0] is loc[0]


def _through_c(info, fr, ins, child):
    """Plan a caller frame whose callee was entered from C at instruction `ins`: (resume target, call_unit,
    stack to rebuild below the re-entry call, lasti marks). Raises NotResumable unless the C in between is a
    proven stateless trampoline."""
    op = ins.op
    d = info.depth_before(ins.opu)
    if fr.stacktop >= 0:
        # A frame in a C call has no stack pointer saved (-1). One that has is tearing down an inlined call
        # (a finalizer or weakref callback run as the callee's locals are released): its slots above the saved
        # depth are stale.
        raise NotResumable(f"{info.code.co_qualname} runs a finalizer: wait for it to return")
    if op == BEFORE_WITH:
        if _entering(fr, d, child):  # the slot holds the manager's bound __exit__, pushed before __enter__ ran
            return ins.end, ins.opu, list(fr.stack(d)), frozenset(s for s in info.lasti_marks(ins.opu) if s < d)
        raise WaitForReturn(f"{info.code.co_qualname} is in a call from C (BEFORE_WITH): wait for it to return")
    if op == CALL and _partial_of_one(info, fr, ins, d, child):
        keep = d - ins.arg - 2
        return ins.end, ins.opu, list(fr.stack(d)[:keep]), frozenset(s for s in info.lasti_marks(ins.opu) if s < keep)
    if op == FOR_ITER and _mapped_by(fr.slot_id(d - 1), child):
        # `for y in map(f, xs)`: the callee is f, called by map_next with the items it pulled, which keeps nothing
        # after that call returns: resumed as a __next__ is, on the map (its iterators are past those items).
        return ins.end, (ins.opu, (A_NEXT, ins.end + ins.arg)), list(fr.stack(d)), \
            frozenset(s for s in info.lasti_marks(ins.opu) if s < d)
    if op == FOR_ITER and (fl := _filtered_by(fr.slot_id(d - 1), child)) is not None:
        # `for y in filter(p, xs)`: the callee is p, called by filter_next on the item it pulled, which keeps only
        # that item until p returns. Resumed as a call of the restored p whose result a rest function takes as
        # filter_next does (`morph._filter_rest`): the item, or the filter's next one; the iterator and the item
        # are pushed for it above the loop's stack.
        full = list(fr.stack(d))
        return ins.end, (ins.opu, (A_FILTER, ins.end + ins.arg, fl[0])), full + [full[d - 1], fl[1]], \
            frozenset(s for s in info.lasti_marks(ins.opu) if s < d)
    if not _anchored(fr, _anchor(info, ins, d), child):
        # Not called on an object it holds: maybe a finalizer run while the caller releases its operands after
        # a call (its slots may then hold freed objects, so they are not read).
        raise WaitForReturn(f"{info.code.co_qualname} is in a call from C ({dis.opname[op]}): wait for it to return")
    full = fr.stack(d)
    fn = child.func
    adapt, extra = None, ()
    target = ins.end
    keep = None
    name = info.code.co_names[ins.arg] if op in (LOAD_ATTR, LOAD_METHOD, STORE_ATTR) else None
    if op in (CALL, CALL_FUNCTION_EX):
        used = ins.arg + 2 if op == CALL else 3 + (ins.arg & 1)
        if full[d - used] is not NULL:  # a method call: Python functions are called inline, C methods keep state
            raise WaitForReturn(f"{info.code.co_qualname} is in a call from C: wait for it to return")
        r = _called_by(full[d - used + 1], fn, child)
        if r is not None:
            adapt, extra = r
            keep = d - used
        elif (cls := _new_called_by(full[d - used + 1], fn, child)) is not None:
            # type_call running a Python __new__: resumed as a call of `_NewThenInit` put in the callable's slot,
            # given the call's operands and __new__'s result (the re-entered __new__ returns it: `morph.A_PASS`),
            # which does what type_call does after __new__ returns. `Cls(*args, **kw)` too: its operands are the
            # argument tuple and keyword dict the instruction made exact before it called.
            stack = list(full)
            n, kwnames = (ins.arg, _kwnames(info, ins)) if op == CALL else (used - 2, None)
            stack[d - used + 1] = _NewThenInit(cls, kwnames, n)
            return target, (ins.opu, (A_PASS, n)), stack, frozenset(s for s in info.lasti_marks(ins.opu) if s < d)
    elif op == BINARY_SUBSCR:
        if _dunder_of(full[d - 2], "__getitem__", fn, child):
            keep = d - 2
    elif op == STORE_SUBSCR:
        if _dunder_of(full[d - 2], "__setitem__", fn, child):
            keep, adapt = d - 3, A_DISCARD
    elif op == DELETE_SUBSCR:
        if _dunder_of(full[d - 2], "__delitem__", fn, child):
            keep, adapt = d - 2, A_DISCARD
    elif op in (LOAD_ATTR, LOAD_METHOD):
        if _getattr_calls(full[d - 1], name, fn, child):
            keep = d - 1
            if op == LOAD_METHOD:  # not a plain method: LOAD_METHOD pushes NULL and the attribute
                extra = (NULL,)
    elif op == STORE_ATTR:
        if _setattr_calls(full[d - 1], name, fn, child):
            keep, adapt = d - 2, A_DISCARD
    elif op == FOR_ITER:
        if _dunder_of(full[d - 1], "__next__", fn, child):
            keep, adapt = d, (A_NEXT, ins.end + ins.arg)
    elif op == GET_ITER:
        if _dunder_of(full[d - 1], "__iter__", fn, child):
            keep, adapt = d - 1, A_ITER
    elif op == CONTAINS_OP:  # `item in container`: the container's __contains__(item)
        if _dunder_of(full[d - 1], "__contains__", fn, child) and _second_arg(child) is full[d - 2]:
            keep, adapt = d, (A_CONTAINS, ins.arg)
    elif op in (COMPARE_OP, BINARY_OP):
        a, b = full[d - 2], full[d - 1]
        if _first_arg(child) is a and _second_arg(child) is b:
            r = _compared(a, b, ins.arg, fn) if op == COMPARE_OP else _operated(a, b, ins.arg, fn)
            if r is not None:
                keep, adapt = d, r
    if keep is None:
        raise WaitForReturn(
            f"{info.code.co_qualname} is in a call from C ({dis.opname[op]}) that cannot be resumed: wait for it "
            "to return"
        )
    stack = list(full[:keep]) + list(extra)
    marks = frozenset(s for s in info.lasti_marks(ins.opu) if s < keep)
    return target, (ins.opu if adapt is None else (ins.opu, adapt)), stack, marks


_GEN_SEND = types.GeneratorType.__dict__["send"]
_GEN_NEXT = types.GeneratorType.__dict__["__next__"]


def _stateless_consumers():
    """C callables that consume a generator keeping nothing of their own between its items: `any` and `all` only
    look for the first item that settles them; the others put each item into an object the job holds (the list
    extended, the set or dict updated, the deque, Counter's mapping), so what they did so far is in the state.
    Called again on the generator made again as running, each goes on where it stood. `list(g)`, `sorted(g)`,
    `str.join`, `set(g)` and `tuple(g)` keep what they gathered in a new container of their own
    (`_FILLER_FUNCS`); `sum(g)`, `min(g)` keep it in C locals, and are waited out.
    Maps a function to its operand count (the generator last), a method descriptor to its owner's type."""
    import collections

    funcs = {any: 1, all: 1, getattr(collections, "_count_elements", None): 2}
    methods = {list.__dict__["extend"]: list, set.__dict__["update"]: set, dict.__dict__["update"]: dict,
               collections.deque.__dict__["extend"]: collections.deque,
               collections.deque.__dict__["extendleft"]: collections.deque}
    funcs.pop(None, None)
    return funcs, methods


_CONSUMER_FUNCS, _CONSUMER_METHODS = _stateless_consumers()


def _list_rest(done, g):
    """`list(g)` resumed: the items gathered before the checkpoint, then the rest (`list.extend` keeps nothing
    of its own, so a checkpoint inside this call resumes it in turn)."""
    done.extend(g)
    return done


def _sorted_rest(done, g):
    done.extend(g)
    done.sort()
    return done


def _set_rest(done, g):
    done.update(g)
    return done


def _frozenset_rest(done, g):
    s = set(done)
    s.update(g)
    return frozenset(s)


def _tuple_rest(done, g):  # `done`: the items the tuple held so far, as a list (`_mlrs.held_by_c`)
    done.extend(g)
    return tuple(done)


def _join_rest(done, sep, g):
    done.extend(g)
    return sep.join(done)


class _Resume:
    """A call of a C function filling a container from a generator, resumed on the container found (`_fills`):
    the caller calls this object instead, whose Python `__call__` the capture proves like any instance called
    through C (a `functools.partial` in the slot is not: C overwrites the slot during its call), so a later
    checkpoint inside the same call is resumed again."""

    __slots__ = ("rest", "done")

    def __init__(self, rest, done):
        self.rest, self.done = rest, done

    def __call__(self, g):
        return self.rest(self.done, g)


class _ResumeMethod(_Resume):
    """`sep.join(g)` resumed: called as the method was, on the object and the generator."""

    __slots__ = ()

    def __call__(self, obj, g):
        return self.rest(self.done, obj, g)


def _absorbed(done, r):
    """What a filler gathered (a list, or a set or frozenset under construction) with one more item."""
    if type(done) is list:
        done.append(r)
        return done
    s = done if type(done) is set else set(done)
    s.add(r)
    return s


class _ResumeItem(_Resume):
    """A filler call on `map(f, xs)` resumed while `f` ran: called with the map and `f`'s result (the re-entered
    `f` returns it, `morph.A_PASS`), which is the item the call was taking."""

    __slots__ = ()

    def __call__(self, it, r):
        return self.rest(_absorbed(self.done, r), it)


class _ResumeItemMethod(_Resume):
    """`sep.join(map(f, xs))` resumed while `f` ran."""

    __slots__ = ()

    def __call__(self, obj, it, r):
        return self.rest(_absorbed(self.done, r), obj, it)


class _ItemThen:
    """A consumer call on `map(f, xs)` resumed while `f` ran: does with `f`'s result what the consumer does with
    an item (`any` stops at a true one, `lst.extend` appends it), then calls the consumer again on the map,
    which goes on from the next item. A plain call (`any(m)`) gets (map, item); a method call in the method's
    slot (`lst.extend(m)`) gets (object, map, item)."""

    __slots__ = ("call",)

    def __init__(self, call):
        self.call = call

    def __call__(self, *args):
        c = self.call
        if c is any:
            return True if args[1] else any(args[0])
        if c is all:
            return all(args[0]) if args[1] else False
        obj, it, r = args
        name, absorb = _ABSORB[c]
        absorb(obj, r)
        # Called as the job called it (a method call on the object, whose type's method it was), so that a
        # checkpoint inside is resumed in turn.
        if name == "extend":
            return obj.extend(it)
        if name == "update":
            return obj.update(it)
        return obj.extendleft(it)


# What a stateless consumer method is called and does with one item.
_ABSORB = {list.__dict__["extend"]: ("extend", list.append), set.__dict__["update"]: ("update", set.add),
           collections.deque.__dict__["extend"]: ("extend", collections.deque.append),
           collections.deque.__dict__["extendleft"]: ("extendleft", collections.deque.appendleft)}


# C callables that fill a new container of their own from the generator (held only in a C local): the type of
# that container and what resumes the call given it. A plain call (the function) or a method (its descriptor,
# with the type of the object it is called on).
_FILLER_FUNCS = {list: (list, _list_rest), sorted: (list, _sorted_rest), set: (set, _set_rest),
                 frozenset: (frozenset, _frozenset_rest), tuple: (tuple, _tuple_rest)}
_FILLER_METHODS = {str.__dict__["join"]: (str, list, _join_rest), bytes.__dict__["join"]: (bytes, list, _join_rest)}


def _fills(below, callable_):
    """(slot offset from the callable's slot, container type, resuming function, the class that calls it) when
    the one-operand call on the stack fills a new container from its operand: the slot to give the resuming
    call is the callable's (0) for a plain call, the method's (-1) for a method call. Else None."""
    if below is NULL:
        try:
            f = _FILLER_FUNCS.get(callable_)
        except TypeError:
            return None
        return None if f is None else (0, f[0], f[1], _Resume)
    try:
        m = _FILLER_METHODS.get(below)
    except TypeError:
        return None
    return (-1, m[1], m[2], _ResumeMethod) if m is not None and isinstance(callable_, m[0]) else None


def _fed_by_map(info, fr, ins, child):
    """Plan a caller frame stopped in a one-operand call whose operand is `map(f, xs)` (or `starmap`), pulled by
    a stateless consumer (`any`, `all`, `lst.extend`, `set.update`, `deque.extend`) or a filler (`list`,
    `sorted`, `set`, `frozenset`, `tuple`, `sep.join`), where the callee is `f` called by `map_next`: C keeps
    nothing between `f`'s return and the consumer taking it as its next item. Resumed as a call of an object
    put in the call's slot (`_ItemThen`, or `_ResumeItem` on the container found for a filler) with the
    operand and `f`'s result, which the prologue passes after re-entering `f` (`morph.A_PASS`). Returns
    (target, call_unit, stack, marks, filler) as `_drives_generator`, or None when the call is not of that
    shape (then it is planned as any call through C)."""
    if fr.stacktop >= 0 or ins.arg != 1:
        return None
    d = info.depth_before(ins.opu)
    if d < 3 or not _mapped_by(fr.slot_id(d - 1), child):
        return None
    full = list(fr.stack(d))
    below, callable_ = full[d - 3], full[d - 2]
    call_unit = (ins.opu, (A_PASS, 1))
    # After the call: a specialised PRECALL (3.11) makes the call itself and skips its CALL.
    target = info.instr(ins.end).end if ins.op == PRECALL else ins.end
    marks = frozenset(s for s in info.lasti_marks(ins.opu) if s < d)
    if _consumes(below, callable_, 1, ()) and (below is not NULL or callable_ is any or callable_ is all):
        if below is NULL:
            full[d - 2] = _ItemThen(callable_)
        elif below in _ABSORB:
            full[d - 3] = _ItemThen(below)
        else:
            return None
        return target, call_unit, full, marks, None
    f = _fills(below, callable_)
    if f is None:
        return None
    cls = _ResumeItem if f[3] is _Resume else _ResumeItemMethod
    return target, call_unit, full, marks, (d - 2 + f[0], f[1], f[2], cls)


def _in_pass(info, fr, sp, child):
    """Plan a restored caller stopped in its prologue's call of the object `_fed_by_map` put in the call's slot
    (`_ItemThen`, `_ResumeItem`: `morph.A_PASS`), whose Python `__call__` is the callee: resumed as a call of
    that frame whose result is the original call's. The object must be in the slot (checked by address)."""
    target, cu = sp[1], sp[2]
    d = info.depth_before(cu)  # the original call's depth; the prologue's call has the callee's result above
    me = _first_arg(child)
    if type(me) is _NewThenInit:
        n = me.nargs  # the call's operands: its callable's slot is below them
        slots = (fr.slot_id(d - n - 1),)
    else:
        n = 1
        slots = (fr.slot_id(d - 2), fr.slot_id(d - 3))
    if type(me) not in (_ItemThen, _ResumeItem, _ResumeItemMethod, _NewThenInit) or \
            _mro_lookup(type(me), "__call__") is not child.func or id(me) not in slots:
        raise NotResumable("a frame is in a restore prologue")
    keep = d - n - 2
    return target, cu, list(fr.stack(keep)), frozenset(s for s in info.lasti_marks(cu) if s < keep)


def _drives_generator(info, fr, ins, child):
    """Plan a caller frame stopped in a call that runs the generator whose frame is the callee: `g.send(v)`,
    `g.__next__()`, `next(g)` or `next(g, default)` (a session's driver loop sends each request into the user's
    generator), or a consumer that keeps no state of its own (`any(g)`, `lst.extend(g)`: `_stateless_consumers`).
    The C in between only resumes the generator and hands on what it yields, so the caller re-executes the call
    after the restore, on the generator made again as running (whose prologue drops the value sent).
    `ins` is the call's PRECALL (3.11 runs calls of C functions there) or CALL: the stack is the same at both.
    A C function that fills a new container of its own from the generator (`list(g)`, `sorted(g)`,
    `sep.join(g)`, `set(g)`, `frozenset(g)`, `tuple(g)`: `_FILLER_FUNCS`) is resumed too, once the capture has found that
    container (`_mlrs.held_by_c`): its slot on the stack is then given a function that extends the container
    found by the rest of the generator and does what the C function does after. Each also when the operand is
    a C iterator that pulls from the generator keeping nothing of its own (`list(map(f, g))`: `_pulls_from`).
    Returns (resume target, call_unit, stack, lasti marks, filler): filler is None, or (stack slot, container
    type, resuming function, resuming class) for the capture to complete; raises WaitForReturn for any other call."""
    d = info.depth_before(ins.opu)
    g = child.gen
    # (slot of the generator, operand count, how the callable must look), each checked by address first.
    shapes = ((d - 2, 1, "send"), (d - 1, 0, "__next__"), (d - 1, 1, "next"), (d - 2, 2, "next"),
              (d - 1, 1, "consumer"), (d - 1, 2, "consumer"))
    if fr.stacktop < 0 and g is not None:
        shapes = [sh for sh in shapes if sh[1] == ins.arg]
        # The generator itself in the slot; else (one walk of the collector's lists) a C iterator pulling from it.
        direct = [sh for sh in shapes if fr.slot_id(sh[0]) == id(g)]
        for slot, nargs, how in direct or _wrappers_in_slots(fr, g, shapes):
            full = fr.stack(d)
            below, callable_ = full[d - nargs - 2], full[d - nargs - 1]
            if how == "send" and below is _GEN_SEND and callable_ is g or \
                    how == "__next__" and below is _GEN_NEXT and callable_ is g or \
                    how == "next" and below is NULL and callable_ is next or \
                    how == "consumer" and _consumes(below, callable_, nargs, full[d - nargs:d - 1]):
                return ins.start, None, full, info.lasti_marks(ins.opu), None
            if how == "consumer" and nargs == 1:
                f = _fills(below, callable_)
                if f is not None:
                    return ins.start, None, full, info.lasti_marks(ins.opu), (d - 2 + f[0], f[1], f[2], f[3])
    raise WaitForReturn(f"{info.code.co_qualname} runs a generator through a call from C that cannot be resumed: "
                        "wait for it to return")


def _wrappers_in_slots(fr, g, shapes):
    """The shapes (slot, operand count, how) of the call for a consumer, a filler or `next` whose slot holds a
    C iterator pulling its next item from `g` first and keeping nothing of its own between items
    (`map(f, g)`, `filter(p, g)`, `enumerate(g)`, `zip(g, ...)`, nested: `_wrapped_iterator`): `list(map(f, g))`
    and `"".join(map(str, g))` are resumed as `list(g)` is, on the same iterator. A slot's word is read as an
    object only once the collector's lists show a live object at that address (`_rs.tracked_at`: one walk, done
    only when a slot does not hold `g` itself), as a frame's slot is proved by address before it is read."""
    shapes = [sh for sh in shapes if sh[2] in ("consumer", "next")]
    words = [fr.slot_id(sh[0]) for sh in shapes]
    if not any(words):
        return ()
    return [sh for sh, obj in zip(shapes, _rs.tracked_at(words)) if obj is not None and _pulls_from(obj, g)]


def _pulls_from(it, g):
    """Whether the C iterator `it` pulls its next item from `g` first, through iterators that keep nothing of
    their own between items (`_wrapped_iterator`, up to eight deep: `map(f, enumerate(g))`)."""
    for _ in range(8):
        it = _wrapped_iterator(it)
        if it is g:
            return True
        if it is None:
            return False
    return False


def _consumes(below, callable_, nargs, others):
    """Whether the call on the stack is one of the stateless consumers, by identity: a plain call (NULL, the
    function, its other operands) or a method call (the method descriptor, the object it is called on)."""
    if below is NULL:
        try:
            return _CONSUMER_FUNCS.get(callable_) == nargs
        except TypeError:  # an unhashable callable
            return False
    owner = _CONSUMER_METHODS.get(below) if nargs == 1 and type(below).__name__ == "method_descriptor" else None
    return owner is not None and isinstance(callable_, owner)


def _wrapped_iterator(it):
    """The iterator a `for` loop's C iterator pulls its next item from first, when that iterator keeps nothing
    of its own between the items it pulls (or keeps it in state its own pickling saves): `enumerate` (its count,
    raised after each item), `filter`, `map` and `zip` on their first iterator (nothing pulled yet for the item
    in progress). Else None: such a loop over a generator is waited out."""
    t = type(it)
    if t is enumerate:
        return it.__reduce__()[1][0]
    if t is filter or t is map:
        args = it.__reduce__()[1]
        return args[1] if len(args) > 1 else None
    if t is zip:
        args = it.__reduce__()[1]
        return args[0] if args else None
    return None
