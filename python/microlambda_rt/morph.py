"""Morphs: a frame rebuilt as its own code with a prologue that reloads the locals and the value stack,
re-enters the next inner frame where the frame was suspended in a call, and jumps to where it stopped.

A template depends only on the shape of a frame (code, resume point, which locals are bound, where the stack
has NULLs, whether it re-enters an inner frame); values are supplied per restore through list constants that
the prologue unpacks and then clears, so the morph keeps no reference to restored values. Owns the template
cache ``_TEMPLATES``.
"""

import functools
import operator
import sys
import types

from .analysis import _Entry, _MorphInfo
from .ops import (
    CMP_OPS, CMP_SWAPPED, NB_INPLACE, NB_STEMS, NB_SYMBOLS, _CACHES, CALL, CHECK_EXC_MATCH, CO_VARARGS, CO_VARKEYWORDS, DELETE_FAST, EXTENDED_ARG, JUMP_FORWARD,
    LOAD_CONST, POP_JUMP_FORWARD_IF_TRUE, POP_TOP, PRECALL, PUSH_NULL, RERAISE, RESUME, RETURN_GENERATOR,
    STORE_FAST, SWAP, UNPACK_SEQUENCE, YIELD_VALUE,
)
from .tables import _encode_exception_table, _prefixed_locations

_TEMPLATES = {}

K_FUNC, K_GEN_RUNNING, K_GEN_SUSPENDED, K_GEN_CREATED = "func", "gen_running", "gen_suspended", "gen_created"

# What a C trampoline did to its callee's result, redone by the caller's prologue after the re-entry call (see
# ``trampolines``): a plan's `call_unit` is the call's unit, or (unit, adapt) with one of these.
A_INIT = "init"  # type_call: __init__ must return None; the caller gets the instance (on the stack below)
A_DISCARD = "discard"  # a setter or __setitem__/__delitem__: the result is dropped
A_NEXT = "next"  # ("next", loop exit): FOR_ITER over a Python __next__; StopIteration from it ends the loop
A_ITER = "iter"  # GET_ITER on a Python __iter__: what it returned must be an iterator, as PyObject_GetIter checks
A_CMP = "cmp"  # ("cmp", op): COMPARE_OP on a Python __lt__..: on NotImplemented, the reflected method, then the default
A_BINOP = "binop"  # ("binop", op): BINARY_OP on a Python __sub__/__isub__..: on NotImplemented, what C tries next
A_CONTAINS = "contains"  # ("contains", invert): CONTAINS_OP on a Python __contains__: its result's truth, inverted for `not in`
A_PASS = "pass"  # ("pass", n): the call's n operands and the callee's result go to the (replaced) callable: CALL n + 1
A_FILTER = "filter"  # ("filter", loop exit, invert): FOR_ITER over filter(p, it) whose p ran: the item, or the next one


def _unit_of_call(call_unit):
    """The unit of the call instruction of a plan's `call_unit`."""
    return call_unit if type(call_unit) is int else call_unit[0]


def _init_result(r):
    """type_call's check of what __init__ returned."""
    if r is not None:
        raise TypeError(f"__init__() should return None, not '{type(r).__name__}'")


def _iter_result(r):
    """PyObject_GetIter's check of what a Python __iter__ returned."""
    if getattr(type(r), "__next__", None) is None:
        raise TypeError(f"iter() returned non-iterator of type '{type(r).__name__}'")
    return r


def _tp_name(t):
    """The name CPython's messages give a type (its tp_name): a class's name, or a static C type's dotted one."""
    if t.__flags__ & (1 << 9) or t.__module__ == "builtins":  # Py_TPFLAGS_HEAPTYPE
        return t.__name__
    return f"{t.__module__}.{t.__qualname__}"


def _reflected(t, name):
    """What C calls for the reflected operation on an instance of `t`: its method, or None (no such method)."""
    for k in t.__mro__:
        if name in k.__dict__:
            return k.__dict__[name]
    return None


def _call_reflected(m, b, a):
    return m.__get__(b, type(b))(a) if hasattr(m, "__get__") else m(b, a)


def _compare_rest(op, r, b, a):
    """What do_richcompare does after `type(a)`'s Python comparison method returned `r` (for `a <op> b`, the
    reflected method not tried first): `r` unless NotImplemented; else `b`'s reflected method; else identity for
    == and !=, TypeError for the orderings."""
    if r is not NotImplemented:
        return r
    m = _reflected(type(b), CMP_OPS[CMP_SWAPPED[op]][0])
    if m is not None:
        r = _call_reflected(m, b, a)
        if r is not NotImplemented:
            return r
    if op == 2:
        return a is b
    if op == 3:
        return a is not b
    raise TypeError(f"'{CMP_OPS[op][1]}' not supported between instances of '{_tp_name(type(a))}' and "
                    f"'{_tp_name(type(b))}'")


def _contains_rest(invert, r, container, item):
    """What CONTAINS_OP makes of a Python `__contains__`'s result: its truth (an error in `bool()` propagates),
    inverted for `not in`."""
    return bool(r) != bool(invert)


def _filter_rest(invert, r, item, it):
    """What filter_next (filterfalse_next when `invert`) does once the predicate returned `r` for `item`: the item
    when its truth (an error in `bool()` propagates) is not `invert`, else the next item the filter gives (a
    StopIteration from it, or raised by the predicate it calls, ends the loop as FOR_ITER ends it)."""
    if bool(r) != invert:
        return item
    return next(it)


def _binop_rest(op, inplace_method, r, b, a):
    """What binary_iop1/binary_op1 do after `type(a)`'s Python method returned `r` for `a <op> b`: `r` unless
    NotImplemented; else, when that was the in-place method (`__isub__`), the plain operation from its start
    (the forward method, the reflected one); else `b`'s reflected method (types differ); else TypeError. The
    plans exclude the cases where C would first have tried `b`'s reflected method, or a sequence's
    concatenation or repetition."""
    if r is not NotImplemented:
        return r
    plain = op % NB_INPLACE
    if inplace_method:
        try:
            return _OPERATORS[plain](a, b)
        except TypeError as e:
            if str(e) == _unsupported(plain, a, b):
                raise TypeError(_unsupported(op, a, b)) from None
            raise
    if type(a) is not type(b):
        m = _reflected(type(b), f"__r{NB_STEMS[plain]}__")
        if m is not None:
            r = _call_reflected(m, b, a)
            if r is not NotImplemented:
                return r
    raise TypeError(_unsupported(op, a, b))


def _unsupported(op, a, b):
    sym = "** or pow()" if NB_SYMBOLS[op] == "**" else NB_SYMBOLS[op]
    return f"unsupported operand type(s) for {sym}: '{_tp_name(type(a))}' and '{_tp_name(type(b))}'"


_OPERATORS = tuple(getattr(operator, n) for n in ("add", "and_", "floordiv", "lshift", "matmul", "mul", "mod", "or_",
                                                  "pow", "rshift", "sub", "truediv", "xor"))


_RESTS = {A_CMP: "cmp_rest", A_BINOP: "binop_rest", A_CONTAINS: "contains_rest", A_FILTER: "filter_rest"}  # adapt kind -> its const tag
_CHECKS = {A_INIT: ("init_check", False), A_ITER: ("iter_check", True)}  # adapt -> (its check, keep what it returns)


class _Template:
    __slots__ = ("code_bytes", "table", "linetable", "stacksize", "slots", "flags", "shift", "special", "layout")


def _emit(buf, op, arg=0):
    if arg > 0xFFFFFF:
        buf += bytes((EXTENDED_ARG, (arg >> 24) & 255))
    if arg > 0xFFFF:
        buf += bytes((EXTENDED_ARG, (arg >> 16) & 255))
    if arg > 0xFF:
        buf += bytes((EXTENDED_ARG, (arg >> 8) & 255))
    buf += bytes((op, arg & 255))
    buf += b"\0\0" * _CACHES[op]


def _template(info, kind, target, slots, mask, call_unit, yield_unit):
    key = (info.code, kind, target, slots, mask, call_unit, yield_unit)
    t = _TEMPLATES.get(key)
    if t is not None:
        return t
    code = info.code
    nconst = len(code.co_consts)
    layout = []  # what each extra constant is: ("locals",) ("run", lo, hi) ("clear", i) ("inner",) ("none",)
    pro = bytearray()
    pos = []
    entries = []
    special = {}

    def const(what):
        layout.append(what)
        return nconst + len(layout) - 1

    def emit(op, arg=0, loc=None):
        u = len(pro) // 2
        _emit(pro, op, arg)
        pos.extend([loc] * (len(pro) // 2 - u))
        return u

    def copy_cover(unit, lo, hi):
        e = info.cover(unit)
        if e is not None:
            entries.append(_Entry(lo, hi, e.target, e.depth, e.lasti))  # target shifted below

    def ends_loop(loop_exit, lo, hi, depth):
        """End the prologue with a jump to the resume target over a handler for units [lo, hi): StopIteration
        raised there (and only there) ends the loop as FOR_ITER does, the stack cut to `depth` (the loop's
        iterator on top): the handler pops the exception and the iterator and jumps to the loop's exit. Any
        other exception is re-raised under the call's original cover."""
        ks = const(("stopiter",))
        handler = bytearray()
        _emit(handler, LOAD_CONST, ks)
        _emit(handler, CHECK_EXC_MATCH)
        _emit(handler, POP_JUMP_FORWARD_IF_TRUE, 1)
        reraise_at = len(handler) // 2
        _emit(handler, RERAISE, 0)
        _emit(handler, POP_TOP)
        _emit(handler, POP_TOP)
        _emit(handler, JUMP_FORWARD, loop_exit)  # the last prologue instruction: relative = original offset
        hlen = len(handler) // 2
        emit(JUMP_FORWARD, hlen + jump_to, loc)
        h0 = len(pro) // 2
        entries.append(_Entry(lo, hi, -1 - h0, depth, False))  # a prologue target: not shifted below
        pro.extend(handler)
        pos.extend([loc] * hlen)
        copy_cover(cu, h0 + reraise_at, h0 + reraise_at + 1)

    # A RESUME first, as in every code object: it makes the whole morph "traceable" (3.11 treats frames before
    # their first RESUME as incomplete and hides them from f_back), so a restored caller waiting in the
    # prologue's re-entry call is a complete frame like the original.
    if kind == K_FUNC:
        emit(RESUME, 0)
    elif kind != K_GEN_CREATED:
        emit(RETURN_GENERATOR)
        emit(POP_TOP)
        emit(RESUME, 0)
    lists = []
    if slots:
        k = const(("locals",))
        lists.append(k)
        emit(LOAD_CONST, k)
        emit(UNPACK_SEQUENCE, len(slots))
        for s in slots:
            emit(STORE_FAST, s)
    # The morph keeps the original signature (zero-argument super() and introspection rely on it) and is called
    # with defaults for every parameter; parameters that were unbound at the checkpoint are unbound again.
    for a in range(_nparams(code)):
        if a not in slots:
            emit(DELETE_FAST, a)
    i = 0
    while i < len(mask):
        if mask[i]:
            emit(PUSH_NULL)
            i += 1
            continue
        j = i
        while j < len(mask) and not mask[j]:
            j += 1
        k = const(("run", i, j))
        lists.append(k)
        emit(LOAD_CONST, k)
        emit(UNPACK_SEQUENCE, j - i)
        i = j
    for k in lists:
        kc = const(("clear", k))
        emit(PUSH_NULL)
        emit(LOAD_CONST, kc)
        emit(PRECALL, 0)
        emit(CALL, 0)
        emit(POP_TOP)
    if kind == K_GEN_CREATED:
        u = emit(RETURN_GENERATOR)
        special[u] = ("created", yield_unit)
        emit(POP_TOP)
        jump_to = yield_unit + 2  # past the original RETURN_GENERATOR; POP_TOP
    elif kind in (K_GEN_SUSPENDED, K_GEN_RUNNING):
        kn = const(("none",))
        loc = info.positions()[yield_unit] if kind == K_GEN_SUSPENDED else None
        emit(LOAD_CONST, kn, loc)
        u = emit(YIELD_VALUE, 0, loc)
        if kind == K_GEN_SUSPENDED:
            copy_cover(yield_unit, u, u + 1)
            special[u] = ("yield", yield_unit)
            # The same RESUME as after the original yield: its argument tells CPython whether the generator is
            # delegating (`yield from`), which gen.throw() and gen.close() rely on.
            after = info.instr(yield_unit + 1)
            emit(RESUME, after.arg if after.op == RESUME else 1, loc)
            jump_to = after.end if after.op == RESUME else yield_unit + 1
        else:
            special[u] = ("restoring",)
            emit(POP_TOP)  # the value FOR_ITER or SEND sent to resume it
            jump_to = target
    else:
        jump_to = target
    tail = False  # whether the prologue ends in a handler of its own rather than the jump to `target`
    if call_unit is not None:
        cu, adapt = (call_unit, None) if type(call_unit) is int else call_unit
        loc = info.positions()[cu]
        kh = const(("inner",))
        s0 = emit(PUSH_NULL, 0, loc)
        emit(LOAD_CONST, kh, loc)
        emit(UNPACK_SEQUENCE, 1, loc)
        emit(PRECALL, 0, loc)
        emit(CALL, 0, loc)
        end = len(pro) // 2
        special[end - 1] = ("call", target, call_unit)
        if adapt is None:
            copy_cover(cu, s0, end)
        elif adapt == A_DISCARD:
            emit(POP_TOP, 0, loc)
            copy_cover(cu, s0, len(pro) // 2)
        elif adapt in _CHECKS:
            # A_INIT: [instance, __init__'s result] -> [instance], checked as type_call does; A_ITER: [__iter__'s
            # result] -> [it], checked as PyObject_GetIter does. The result goes through the check's call.
            tag, keep_result = _CHECKS[adapt]
            kc = const((tag,))
            emit(PUSH_NULL, 0, loc)
            emit(SWAP, 2, loc)
            emit(LOAD_CONST, kc, loc)
            emit(SWAP, 2, loc)
            emit(PRECALL, 1, loc)
            emit(CALL, 1, loc)
            if not keep_result:
                emit(POP_TOP, 0, loc)
            copy_cover(cu, s0, len(pro) // 2)
        elif adapt[0] in _RESTS:
            # [a, b, result] -> [what C makes of it]: the rest function is called as rest(result, b, a).
            kc = const((_RESTS[adapt[0]],) + tuple(adapt[1:]))
            emit(PUSH_NULL, 0, loc)
            emit(LOAD_CONST, kc, loc)
            for i in (5, 4, 2, 5, 4):
                emit(SWAP, i, loc)
            emit(PRECALL, 3, loc)
            emit(CALL, 3, loc)
            if adapt[0] == A_FILTER:
                # [iterator, iterator, item, result] -> [iterator, next item]: the predicate's call and the rest's
                # (which may pull the next item) end the loop on StopIteration, down to the loop's iterator.
                ends_loop(adapt[1], s0, len(pro) // 2, len(mask) - 2)
                tail = True
            else:
                copy_cover(cu, s0, len(pro) // 2)
        elif adapt[0] == A_PASS:
            # [callable, its n operands, the callee's result]: the callable the capture put in the call's slot
            # (`trampolines._fed_by_map`) gets the result as one more operand.
            emit(PRECALL, adapt[1] + 1, loc)
            u2 = emit(CALL, adapt[1] + 1, loc)
            special[u2] = ("pass", target, cu)  # a capture in that call: `trampolines._in_pass`
            copy_cover(cu, s0, len(pro) // 2)
        elif adapt[0] == A_NEXT:
            # The value of the resumed __next__ enters the loop body.
            ends_loop(adapt[1], s0, end, len(mask))
            tail = True
    if not tail:
        emit(JUMP_FORWARD, jump_to)  # the last prologue instruction: its relative target is the original offset
    shift = len(pro) // 2
    table = [_Entry(e.start, e.end, -1 - e.target if e.target < 0 else e.target + shift, e.depth, e.lasti)
             for e in entries]
    table += [_Entry(e.start + shift, e.end + shift, e.target + shift, e.depth, e.lasti) for e in info.table]
    t = _Template()
    t.code_bytes = bytes(pro) + code.co_code
    t.table = _encode_exception_table(table)
    t.linetable = _prefixed_locations(pos, code, info.leading())
    t.stacksize = code.co_stacksize + len(slots) + len(mask) + 4
    t.slots = slots
    t.flags = code.co_flags
    t.shift = shift
    t.special = special
    t.layout = layout
    _TEMPLATES[key] = t
    return t


class _Morph:
    """One instantiated morph: its code and the lists its prologue unpacks (filled before it runs)."""

    __slots__ = ("code", "lists", "holder", "shift")

    def __init__(self, info, t):
        extras = []
        lists = {}
        holder = None
        for what in t.layout:
            tag = what[0]
            if tag in ("locals", "run"):
                lst = []
                lists[what] = lst
                extras.append(lst)
            elif tag == "clear":
                extras.append(extras[what[1] - len(info.code.co_consts)].clear)
            elif tag == "inner":
                holder = []
                extras.append(holder)
            elif tag == "init_check":
                extras.append(_init_result)
            elif tag == "iter_check":
                extras.append(_iter_result)
            elif tag == "cmp_rest":
                extras.append(functools.partial(_compare_rest, what[1]))
            elif tag == "binop_rest":
                extras.append(functools.partial(_binop_rest, what[1], what[2]))
            elif tag == "contains_rest":
                extras.append(functools.partial(_contains_rest, what[1]))
            elif tag == "filter_rest":
                extras.append(functools.partial(_filter_rest, what[2]))
            elif tag == "stopiter":
                extras.append(StopIteration)
            else:
                extras.append(None)
        extras.append(_MorphInfo(info.code, t.shift, t.special))
        code = info.code
        self.code = code.replace(
            co_code=t.code_bytes,
            co_consts=code.co_consts + tuple(extras),
            co_exceptiontable=t.table,
            co_linetable=t.linetable,
            co_stacksize=t.stacksize,
        )
        self.lists = lists
        self.holder = holder
        self.shift = t.shift

    def fill(self, local_values, stack_values):
        """Put a frame's values in the lists the prologue unpacks (and empties) when it next runs. A morph shared
        by generators of one shape is filled again for each: whatever a failed restore left is replaced."""
        for what, lst in self.lists.items():
            if what[0] == "locals":
                lst[:] = local_values
            else:
                _, lo, hi = what
                lst[:] = reversed(stack_values[lo:hi])


def _slot_names(code):
    """Names of the frame slots (3.11 `localsplus`): locals, then cells that are not arguments, then free vars."""
    v = code.co_varnames
    return v + tuple(c for c in code.co_cellvars if c not in v) + code.co_freevars


def _nparams(code):
    return code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & CO_VARARGS) + \
        bool(code.co_flags & CO_VARKEYWORDS)


def _morph_function(morph_code, orig, module, qualname, closure):
    """A function running `morph_code`, callable with no arguments: every parameter gets a placeholder default
    that the prologue overwrites."""
    g = sys.modules[module].__dict__
    fn = types.FunctionType(morph_code, g, orig.co_name, (None,) * orig.co_argcount or None, closure)
    if orig.co_kwonlyargcount:
        kw = orig.co_varnames[orig.co_argcount:orig.co_argcount + orig.co_kwonlyargcount]
        fn.__kwdefaults__ = dict.fromkeys(kw)
    fn.__qualname__ = qualname
    return fn


def _closure_of(code, slots, values):
    """The cells of a frame's free variables, as the morph function's closure (COPY_FREE_VARS is skipped)."""
    nfree = len(code.co_freevars)
    if not nfree:
        return None
    first = len(_slot_names(code)) - nfree
    by_slot = dict(zip(slots, values))
    return tuple(by_slot[first + i] for i in range(nfree))


# A saved ``lasti`` on the value stack is an offset into the code: into the morph while a restored frame runs,
# into the original code in a checkpoint.


def _fix_lasti(v, slot, marks, shift):
    if slot in marks and type(v) is int:
        return v - shift
    return v


def _shift_marks(stack, marks, shift):
    if not marks:
        return stack
    out = list(stack)
    for s in marks:
        if type(out[s]) is int:
            out[s] += shift
    return out
