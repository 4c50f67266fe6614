"""microlambda runtime: the Python half of the checkpoint engine (CPython 3.11 only).

The worker binary embeds this file and registers it as the module ``microlambda_rt``. The Rust half
(``src/py``) triggers a checkpoint, and in a trace event walks the interpreter frames of the running job; it
hands :func:`capture` one ``RawFrame`` per frame, innermost first. This module decides whether that instant can
be resumed, and pickles the job's state: its frames (code reference, resume point, locals, value stack), the
mutable globals of the job's own module, generator objects, the handled exception and RNG state.

On restore, each frame is rebuilt as a *morph*: the frame's own code with a prologue prepended that reloads the
locals and the value stack, calls the next inner morph where the frame was suspended in a call, and jumps to the
instruction where the frame stopped. Relative jumps are unchanged by prepending; the exception table and the
location table are re-encoded; a marker constant (:class:`_MorphInfo`) lets a later checkpoint of a restored run
map morph offsets back to the original code, so checkpoints chain.

Version-specific knowledge lives here and in ``src/py/frame311.rs``; nothing else in microlambda depends on the
CPython frame layout.
"""

import dis
import collections
import gc
import hashlib
import io
import json
import linecache
import opcode
import pickle
import random
import re
import sys
import traceback
import types

import cloudpickle

if sys.version_info[:2] != (3, 11):  # pragma: no cover - the worker refuses earlier
    raise ImportError("microlambda_rt supports CPython 3.11 only, not " + sys.version)

_rs = sys.modules["_mlrs"]
_DEBUG = bool(__import__("os").environ.get("ML_DEBUG"))
from time import perf_counter as _perf  # the Rust helpers (RawFrame, generator access), registered by the worker

# ---------------------------------------------------------------------------------------------------------------
# Opcodes of 3.11

OP = dis.opmap
_CACHES = opcode._inline_cache_entries
EXTENDED_ARG = OP["EXTENDED_ARG"]
CALL = OP["CALL"]
PRECALL = OP["PRECALL"]
KW_NAMES = OP["KW_NAMES"]
BINARY_SUBSCR = OP["BINARY_SUBSCR"]
CALL_FUNCTION_EX = OP["CALL_FUNCTION_EX"]
FOR_ITER = OP["FOR_ITER"]
SEND = OP["SEND"]
YIELD_VALUE = OP["YIELD_VALUE"]
RETURN_GENERATOR = OP["RETURN_GENERATOR"]
POP_TOP = OP["POP_TOP"]
RESUME = OP["RESUME"]
PUSH_NULL = OP["PUSH_NULL"]
LOAD_CONST = OP["LOAD_CONST"]
STORE_FAST = OP["STORE_FAST"]
DELETE_FAST = OP["DELETE_FAST"]
UNPACK_SEQUENCE = OP["UNPACK_SEQUENCE"]
JUMP_FORWARD = OP["JUMP_FORWARD"]
COPY = OP["COPY"]
SWAP = OP["SWAP"]
_BACKWARD = {
    OP[n]
    for n in (
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "POP_JUMP_BACKWARD_IF_FALSE",
        "POP_JUMP_BACKWARD_IF_TRUE",
        "POP_JUMP_BACKWARD_IF_NONE",
        "POP_JUMP_BACKWARD_IF_NOT_NONE",
    )
}
_JREL = set(dis.hasjrel)
_NO_FALLTHROUGH = {
    OP[n] for n in ("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "RETURN_VALUE", "RAISE_VARARGS", "RERAISE")
}
_HAVE_ARGUMENT = opcode.HAVE_ARGUMENT

FRAME_OWNED_BY_GENERATOR = 1
CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_GENERATOR = 0x20
CO_ASYNC = 0x80 | 0x100 | 0x200  # coroutine, iterable coroutine, async generator

GEN_CREATED, GEN_SUSPENDED = -2, -1  # gi_frame_state values


class _Null:
    """Stands for a NULL slot of the value stack (3.11 puts NULL below a callable)."""

    __slots__ = ()

    def __repr__(self):
        return "<NULL>"

    def __reduce__(self):
        return "NULL"


NULL = _Null()


class NotResumable(Exception):
    """This instant cannot be resumed; the engine waits for the next one."""


class CheckpointError(Exception):
    """The state cannot be checkpointed (the message names what and where)."""


class RestoreError(Exception):
    """A checkpoint cannot be restored here (changed code, missing module...)."""


# ---------------------------------------------------------------------------------------------------------------
# Static analysis of a code object: instruction boundaries, stack depth and lasti markers at each instruction.


class _Instr:
    __slots__ = ("start", "opu", "op", "arg", "end")

    def __init__(self, start, opu, op, arg, end):
        self.start, self.opu, self.op, self.arg, self.end = start, opu, op, arg, end


class _Entry:
    __slots__ = ("start", "end", "target", "depth", "lasti")

    def __init__(self, start, end, target, depth, lasti):
        self.start, self.end, self.target, self.depth, self.lasti = start, end, target, depth, lasti


class CodeInfo:
    """What the engine needs to know of one (original) code object. Built once per code and cached."""

    def __init__(self, code):
        self.code = code
        raw = code.co_code  # deoptimised: specialised opcodes back to their base, caches zeroed
        n = len(raw) // 2
        self.ops = []
        self.owner = [0] * n
        i = 0
        while i < n:
            start = i
            op, arg = raw[2 * i], raw[2 * i + 1]
            while op == EXTENDED_ARG:
                i += 1
                op, arg = raw[2 * i], (arg << 8) | raw[2 * i + 1]
            end = i + 1 + _CACHES[op]
            for u in range(start, min(end, n)):
                self.owner[u] = len(self.ops)
            self.ops.append(_Instr(start, i, op, arg, end))
            i = end
        self.table = [
            _Entry(e.start // 2, e.end // 2, e.target // 2, e.depth, e.lasti) for e in dis._parse_exception_table(code)
        ]
        self._depth = None
        self._marks = None
        self._positions = None

    def instr(self, unit):
        return self.ops[self.owner[unit]]

    def cover(self, unit):
        for e in self.table:
            if e.start <= unit < e.end:
                return e
        return None

    def positions(self):
        if self._positions is None:
            self._positions = list(self.code.co_positions())
        return self._positions

    def _analyze(self):
        ops = self.ops
        depth = [None] * len(ops)
        marks = [None] * len(ops)
        work = [(0, 0, frozenset())]
        while work:
            idx, d, mk = work.pop()
            if depth[idx] is not None:
                continue
            depth[idx] = d
            marks[idx] = mk
            ins = ops[idx]
            op, arg = ins.op, ins.arg
            e = self.cover(ins.opu)
            if e is not None:
                hm = frozenset(s for s in mk if s < e.depth)
                if e.lasti:
                    hm |= {e.depth}
                work.append((self.owner[e.target], e.depth + 1 + int(e.lasti), hm))
            oparg = arg if op >= _HAVE_ARGUMENT else None
            succ = []
            # The compiler books the popping of a call's arguments on PRECALL; at run time CALL does it all.
            if op == RETURN_GENERATOR:  # the frame resumes with the value sent to it, which POP_TOP drops
                succ.append((self.owner[ins.end], d + 1))
            elif op == PRECALL:
                succ.append((self.owner[ins.end], d))
            elif op == CALL:
                succ.append((self.owner[ins.end], d - arg - 1))
            elif op not in _NO_FALLTHROUGH and ins.end < len(self.owner):
                succ.append((self.owner[ins.end], d + dis.stack_effect(op, oparg, jump=False)))
            if op in _JREL:
                t = ins.end - arg if op in _BACKWARD else ins.end + arg
                succ.append((self.owner[t], d + dis.stack_effect(op, oparg, jump=True)))
            for nidx, nd in succ:
                if op == COPY:
                    nm = mk | ({d} if (d - arg) in mk else set())
                elif op == SWAP:
                    top, other = d - 1, d - arg
                    nm = set(mk)
                    a, b = top in mk, other in mk
                    nm.discard(top)
                    nm.discard(other)
                    if a:
                        nm.add(other)
                    if b:
                        nm.add(top)
                    nm = frozenset(nm)
                else:
                    nm = frozenset(s for s in mk if s < nd)
                work.append((nidx, nd, nm))
        self._depth, self._marks = depth, marks

    def depth_before(self, unit):
        """Stack depth just before the instruction containing `unit` runs (a compiler invariant)."""
        if self._depth is None:
            self._analyze()
        d = self._depth[self.owner[unit]]
        if d is None:
            raise NotResumable("unreachable instruction")
        return d

    def lasti_marks(self, unit):
        """Stack slots holding a saved `lasti` (an instruction offset) before the instruction at `unit`."""
        if self._marks is None:
            self._analyze()
        return self._marks[self.owner[unit]] or frozenset()

    def kwnames_fix(self, unit):
        """A stop between KW_NAMES and CALL would lose the keyword names (a C local of the eval loop):
        resume at the KW_NAMES instead, which has no stack effect. PRECALL is idempotent on its own output."""
        idx = self.owner[unit]
        ins = self.ops[idx]
        if ins.op == CALL and idx > 0 and self.ops[idx - 1].op == PRECALL:
            idx -= 1
            ins = self.ops[idx]
        if ins.op == PRECALL and idx > 0 and self.ops[idx - 1].op == KW_NAMES:
            return self.ops[idx - 1].start
        return unit


_INFO = {}


def code_info(code):
    info = _INFO.get(code)
    if info is None or info.code is not code:
        info = _INFO[code] = CodeInfo(code)
    return info


class _MorphInfo:
    """Last constant of every morph code: where it came from, so a restored frame can be captured again."""

    __slots__ = ("code", "shift", "special")

    def __init__(self, code, shift, special):
        self.code = code  # the original code object
        self.shift = shift  # prologue length in code units
        self.special = special  # prologue unit -> ("call", target, call_unit) | ("yield", yield_unit) | ...

    def __reduce__(self):
        raise pickle.PicklingError("morph internals are not picklable")


def _origin(code):
    """(original CodeInfo, shift, special) for a code object that may be a morph."""
    consts = code.co_consts
    if consts and type(consts[-1]) is _MorphInfo:
        m = consts[-1]
        return code_info(m.code), m.shift, m.special
    return code_info(code), 0, None


# ---------------------------------------------------------------------------------------------------------------
# Encoders for the 3.11 exception table and location table.


def _varint_be(out, v, first):
    chunks = [v & 63]
    v >>= 6
    while v:
        chunks.append(v & 63)
        v >>= 6
    chunks.reverse()
    last = len(chunks) - 1
    for i, c in enumerate(chunks):
        b = c | (0x40 if i < last else 0)
        if i == 0 and first:
            b |= 0x80
        out.append(b)


def _encode_exception_table(entries):
    out = bytearray()
    for e in entries:
        _varint_be(out, e.start, True)
        _varint_be(out, e.end - e.start, False)
        _varint_be(out, e.target, False)
        _varint_be(out, (e.depth << 1) | int(e.lasti), False)
    return bytes(out)


def _varint(out, v):
    while v >= 64:
        out.append(0x40 | (v & 63))
        v >>= 6
    out.append(v)


def _encode_locations(positions, firstlineno):
    out = bytearray()
    line = firstlineno
    i, n = 0, len(positions)
    while i < n:
        p = positions[i]
        j = i + 1
        while j < n and j - i < 8 and positions[j] == p:
            j += 1
        length = j - i
        if p is None or p[0] is None:
            out.append(0x80 | (15 << 3) | (length - 1))
        else:
            ln, eln, col, ecol = p
            out.append(0x80 | (14 << 3) | (length - 1))
            delta = ln - line
            _varint(out, (-delta << 1) | 1 if delta < 0 else delta << 1)
            _varint(out, (eln - ln) if eln is not None else 0)
            _varint(out, col + 1 if col is not None else 0)
            _varint(out, ecol + 1 if ecol is not None else 0)
            line = ln
        i = j
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------------
# Morph templates. A template depends only on the shape of a frame (code, resume point, which locals are bound,
# where the stack has NULLs, whether it re-enters an inner frame); values are supplied per restore through list
# constants that the prologue unpacks and then clears, so the morph keeps no reference to restored values.

_TEMPLATES = {}

K_FUNC, K_GEN_RUNNING, K_GEN_SUSPENDED, K_GEN_CREATED = "func", "gen_running", "gen_suspended", "gen_created"


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
    if call_unit is not None:
        loc = info.positions()[call_unit]
        kh = const(("inner",))
        s0 = emit(PUSH_NULL, 0, loc)
        emit(LOAD_CONST, kh, loc)
        emit(UNPACK_SEQUENCE, 1, loc)
        emit(PRECALL, 0, loc)
        emit(CALL, 0, loc)
        end = len(pro) // 2
        copy_cover(call_unit, s0, end)
        special[end - 1] = ("call", target, call_unit)
    emit(JUMP_FORWARD, jump_to)  # the last prologue instruction: its relative target is the original offset
    shift = len(pro) // 2
    table = [_Entry(e.start, e.end, e.target + shift, e.depth, e.lasti) for e in entries]
    table += [_Entry(e.start + shift, e.end + shift, e.target + shift, e.depth, e.lasti) for e in info.table]
    t = _Template()
    t.code_bytes = bytes(pro) + code.co_code
    t.table = _encode_exception_table(table)
    t.linetable = _encode_locations(pos + info.positions(), code.co_firstlineno)
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
        for what, lst in self.lists.items():
            if what[0] == "locals":
                lst.extend(local_values)
            else:
                _, lo, hi = what
                lst.extend(reversed(stack_values[lo:hi]))


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


# ---------------------------------------------------------------------------------------------------------------
# Code identity: code objects are saved by reference (module, qualified name, first line, hash) wherever they can
# be found again from their module, so a restore against changed code fails clearly.

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
_MODULE_INDEX = {}  # module name -> (module dict id, {(qualname, firstlineno): [code, ...]})


def _module_of_code(code):
    name = _FILE_MODULE.get(code.co_filename)
    if name is None:
        for mname, m in list(sys.modules.items()):
            f = getattr(m, "__file__", None)
            if f and f not in _FILE_MODULE:
                _FILE_MODULE[f] = mname
        name = _FILE_MODULE.get(code.co_filename)
    return name


def _index_module(name):
    mod = sys.modules.get(name)
    if mod is None:
        return None
    cached = _MODULE_INDEX.get(name)
    if cached is not None and cached[0] is mod:
        return cached[1]
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

    for v in list(vars(mod).values()):
        add_obj(v, 0)
    _MODULE_INDEX[name] = (mod, idx)
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
        _MODULE_INDEX.pop(name, None)  # the module may have grown since it was indexed
        idx = _index_module(name)
        cands = idx.get((code.co_qualname, code.co_firstlineno)) if idx else None
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


# ---------------------------------------------------------------------------------------------------------------
# Reconstruction helpers referenced by pickles (by name, from this module).


def _make_cell():
    return types.CellType()


def _cell_set(cell, state):
    if state is not _EMPTY_CELL:
        cell.cell_contents = state


class _EmptyCell:
    __slots__ = ()

    def __reduce__(self):
        return "_EMPTY_CELL"


_EMPTY_CELL = _EmptyCell()


# Objects that are views of other objects must stay views of them: plain pickling (or cloudpickle) turns a dict
# view or a mappingproxy into a view of a copy, a dict iterator into an iterator over a snapshot, and a
# memoryview into bytes — each a silent wrong resume once the job mutates the original. They are saved as their
# base object (pickled once, shared) plus how to take the view again.

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


def _same_entry(a, b, kind):
    """Whether two iterators over a mapping yield the very same entry (an items pair compared by its parts)."""
    if kind != "items":
        return a is b
    return type(a) is tuple and type(b) is tuple and len(a) == len(b) == 2 and a[0] is b[0] and a[1] is b[1]


def _yields(d, kind, rev, skip, rest):
    """Whether an iterator over `d` of `kind`, `skip` entries in, would still yield exactly `rest`."""
    left = _dict_iter(d, kind, rev, skip, None).__reduce__()[1][0]
    return len(left) == len(rest) and all(_same_entry(a, b, kind) for a, b in zip(left, rest))


def _reduce_dict_iter(it, kind, rev):
    # What it still yields, as native pickling would see it (raises if the dict changed size under it).
    rest = it.__reduce__()[1][0]
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
    view = getattr(collections.OrderedDict if isinstance(d, collections.OrderedDict) else dict, kind)(d)
    it = reversed(view) if rev else iter(view)
    for _ in range(skip):
        next(it)
    if rest is not None and len(it.__reduce__()[1][0]) != rest:
        raise RestoreError(f"a dict iterator cannot be rebuilt: {rest} items were left, the dict has {len(d)}")
    return it


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
    if a.base is None or type(a) is not np.ndarray or a.size == 0:
        return NotImplemented
    root = a
    while type(root.base) is np.ndarray:
        root = root.base
    if root.base is None:
        owner, start = root, root.__array_interface__["data"][0]
    else:
        owner = root.base.obj if isinstance(root.base, memoryview) else root.base
        if type(owner) not in (bytes, bytearray):
            return NotImplemented  # memory-mapped files and foreign buffers: saved as a copy
        start = np.frombuffer(owner, np.uint8).__array_interface__["data"][0] if len(owner) else 0
    if owner is a:
        return NotImplemented
    if a.dtype.hasobject:
        raise TypeError("cannot pickle a view into a numpy object array")
    offset = a.__array_interface__["data"][0] - start
    return _np_view, (owner, a.dtype, a.shape, a.strides, offset, a.flags.writeable)


def _np_view(owner, dtype, shape, strides, offset, writeable):
    np = sys.modules.get("numpy") or __import__("numpy")
    v = np.ndarray(shape, dtype, buffer=owner, offset=offset, strides=strides)
    if not writeable and v.flags.writeable:
        v.flags.writeable = False
    return v


_LIVE = {types.MappingProxyType: _reduce_mappingproxy, memoryview: _reduce_memoryview, re.Match: _reduce_match}
for _t, _kind in _DICT_VIEWS.items():
    _LIVE[_t] = lambda v, _kind=_kind: _reduce_dict_view(v, _kind)
for _t, (_kind, _rev) in _DICT_ITERS.items():
    _LIVE[_t] = lambda it, _kind=_kind, _rev=_rev: _reduce_dict_iter(it, _kind, _rev)
del _t, _kind, _rev
_LIVE[type(iter(collections.OrderedDict()))] = _reduce_odict_iter


def _make_function(code, module, name, qualname, closure):
    g = sys.modules[module].__dict__
    f = types.FunctionType(code, g, name, None, closure)
    f.__qualname__ = qualname
    return f


def _function_setstate(f, state):
    defaults, kwdefaults, fdict, annotations, doc, modname = state
    f.__defaults__ = defaults
    f.__kwdefaults__ = kwdefaults
    if fdict:
        f.__dict__.update(fdict)
    if annotations:
        f.__annotations__ = annotations
    f.__doc__ = doc
    f.__module__ = modname


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
    """A generator shell: a morph generator object whose lists are filled (and which is advanced) later."""
    info = code_info(code)
    t = _template(info, kind, target, slots, mask, call_unit, yield_unit)
    m = _Morph(info, t)
    fn = _morph_function(m.code, code, module, qualname, closure)
    if kind == K_GEN_CREATED:
        return _GenPending(fn, m)
    g = fn()
    _SHELLS[id(g)] = (g, m)
    return g


class _GenPending:
    """A created (never started) generator is made by calling its morph once its locals are known."""

    __slots__ = ("fn", "morph", "gen")

    def __init__(self, fn, morph):
        self.fn, self.morph, self.gen = fn, morph, None


_SHELLS = {}  # id(generator) -> (generator, morph) while a restore is in progress


def _gen_setstate(g, state):
    local_values, stack_values, marks, exc = state
    _, m = _SHELLS.pop(id(g))
    m.fill(local_values, _shift_marks(stack_values, marks, m.shift))
    next(g)  # runs the prologue up to its own yield: the generator now waits where the original did
    if exc is not None:
        _rs.set_gen_exc(g, exc)


def _make_created_gen(code, module, qualname, slots, local_values):
    info = code_info(code)
    retgen = next(i.start for i in info.ops if i.op == RETURN_GENERATOR)
    t = _template(info, K_GEN_CREATED, retgen + 2, slots, (), None, retgen)
    m = _Morph(info, t)
    closure = _closure_of(code, slots, local_values)
    fn = _morph_function(m.code, code, module, qualname, closure)
    m.fill(local_values, ())
    return fn()


def _exhausted_gen():
    g = (x for x in ())
    for _ in g:
        pass
    return g


# ---------------------------------------------------------------------------------------------------------------
# Job state and the pickler.


class _Job:
    """The job being run in this worker."""

    def __init__(self, module):
        self.module = module
        self.name = module.__name__
        self.rng0 = random.getstate()
        self.rng_owned = False
        np = sys.modules.get("numpy.random")
        self.nprng0 = np.get_state(legacy=True) if np is not None and hasattr(np, "get_state") else None
        self.nprng_owned = False


JOB = None


def _static_names(mod):
    names = mod.__dict__.get("__microlambda_static__", ())
    return set(names) if isinstance(names, (list, tuple, set, frozenset)) else set()


_SCALARS = (int, float, complex, str, bytes, bool, type(None))


_EXTERN = {}  # id(obj) -> (module, attr): objects owned by library modules, saved by reference
_EXTERN_SEEN = set()  # modules already indexed
_EXTERN_NMODS = -1  # len(sys.modules) when last indexed


def _index_externs(skip=()):
    """Add the namespaces of modules not indexed yet. Run once when the worker starts (warm) and then only for
    modules imported since, so a checkpoint pays for new imports only."""
    global _EXTERN_NMODS
    if _EXTERN_NMODS == len(sys.modules):
        return
    _EXTERN_NMODS = len(sys.modules)
    for mname, m in list(sys.modules.items()):
        if mname in _EXTERN_SEEN or mname in skip or mname in _JOB_MODULES or mname in (__name__, "__main__"):
            continue
        _EXTERN_SEEN.add(mname)
        d = getattr(m, "__dict__", None)
        if not isinstance(d, dict):
            continue
        for k, v in list(d.items()):
            if isinstance(v, _SCALARS) or isinstance(v, _BY_REFERENCE_ANYWAY):
                continue
            _EXTERN.setdefault(id(v), (mname, k))


_BY_REFERENCE_ANYWAY = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)


def warm():
    """Called by the worker once it is up: pay the one-time costs before any job runs."""
    if "numpy" in sys.modules:
        # numpy imports numpy.random lazily; importing it here gives jobs a baseline of the legacy global RNG
        # (saved only when a job changes it) and keeps its import out of restores.
        import numpy.random  # noqa: F401
    _index_externs()
    for mname, m in list(sys.modules.items()):
        f = getattr(m, "__file__", None)
        if f:
            _FILE_MODULE.setdefault(f, mname)


def _extern_index(job):
    _index_externs(skip=(job.name,))
    statics = _static_names(job.module)
    if not statics:
        return _EXTERN
    idx = dict(_EXTERN)
    for k in statics:
        v = job.module.__dict__.get(k)
        if v is not None:
            idx[id(v)] = (job.name, k)
    return idx


def _importable(f):
    mod = sys.modules.get(getattr(f, "__module__", None) or "")
    if mod is None:
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


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file, cap):
        super().__init__(file, protocol=5, buffer_callback=cap.buffers.append)
        self.cap = cap
        self.np = sys.modules.get("numpy")

    def reducer_override(self, obj):
        t = type(obj)
        if t is types.CodeType:
            if type(obj.co_consts[-1] if obj.co_consts else None) is _MorphInfo:
                obj = obj.co_consts[-1].code
            r = _code_ref(obj)
            if r is not None:
                return _lookup_code, r
            return super().reducer_override(obj)
        if t is types.CellType:
            try:
                v = obj.cell_contents
            except ValueError:
                v = _EMPTY_CELL
            return _make_cell, (), v, None, None, _cell_set
        if t is types.GeneratorType:
            return _reduce_generator(obj, self.cap)
        if t is types.FunctionType:
            if _importable(obj):
                return NotImplemented
            g = obj.__globals__
            mname = g.get("__name__")
            m = sys.modules.get(mname) if isinstance(mname, str) else None
            if m is not None and m.__dict__ is g:
                state = (obj.__defaults__, obj.__kwdefaults__, obj.__dict__ or None,
                         obj.__annotations__ or None, obj.__doc__, obj.__module__)
                return _make_function, (obj.__code__, mname, obj.__name__, obj.__qualname__, obj.__closure__), \
                    state, None, None, _function_setstate
            return super().reducer_override(obj)
        if t in (types.FrameType, types.TracebackType, types.CoroutineType, types.AsyncGeneratorType):
            raise TypeError(f"cannot pickle '{t.__name__}' object")
        if isinstance(obj, BaseException):
            return _reduce_exception(obj, t)
        live = _LIVE.get(t)
        if live is not None:
            return live(obj)
        ref = self.cap.extern.get(id(obj))
        if ref is not None:
            m = sys.modules.get(ref[0])
            if m is not None and m.__dict__.get(ref[1]) is obj:
                return _extern, ref
        if self.np is not None and t is self.np.ndarray:
            return _reduce_ndarray(obj, self.np)
        return super().reducer_override(obj)


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
    fr = _rs.gen_frame(g)
    info, shift, special = _origin(fr.code)
    code = info.code
    module = fr.globals.get("__name__")
    slots = tuple(i for i, v in enumerate(fr.locals) if v is not NULL)
    values = [fr.locals[i] for i in slots]
    closure = _closure_of(code, slots, values)
    u = fr.unit
    if state == GEN_CREATED:
        return _make_created_gen, (code, module, g.__qualname__, slots, values)
    if u < shift:
        sp = special.get(u)
        if sp is None or sp[0] != "yield":
            raise NotResumable("a generator is being restored")
        yu = sp[1]
    else:
        yu = u - shift
    if info.instr(yu).op != YIELD_VALUE:
        raise NotResumable("a suspended generator is not at a yield")
    depth = fr.stacktop
    stack = fr.stack(depth)
    mask = tuple(v is NULL for v in stack)
    svals = [_fix_lasti(v, i, info.lasti_marks(yu), shift) for i, v in enumerate(stack)]
    exc = _rs.gen_exc(g)
    return (_make_gen, (code, module, g.__qualname__, closure, K_GEN_SUSPENDED, yu + 1, slots, mask, None, yu),
            (values, svals, tuple(s for s in info.lasti_marks(yu) if s < len(svals)), exc), None, None, _gen_setstate)


def _check_depth(info, unit, depth, consumed):
    """The static stack analysis must agree with the interpreter wherever the real stack depth is known; a
    disagreement would make resumes at statically-known depths wrong, so it refuses the checkpoint."""
    expect = info.depth_before(unit) - consumed
    if expect != depth:
        raise CheckpointError(
            f"engine self-check failed in {info.code.co_qualname}: stack depth {depth} at offset {unit * 2}, "
            f"analysis says {expect}"
        )


def _fix_lasti(v, slot, marks, shift):
    if slot in marks and type(v) is int:
        return v - shift
    return v


# ---------------------------------------------------------------------------------------------------------------
# Capture.


class _Plan:
    """What one frame needs to be rebuilt. Pickled as a plain tuple."""

    __slots__ = ("code", "module", "qualname", "kind", "target", "slots", "values", "mask", "stack", "marks",
                 "call_unit", "gen", "gen_exc", "closure")


def _plan_tuple(p):
    return (p.code, p.module, p.qualname, p.kind, p.target, p.slots, p.values, p.mask, p.stack, p.marks,
            p.call_unit, p.gen, p.gen_exc)


def capture(chain, thread_exc):
    """Capture the job at this instant. `chain`: RawFrames, innermost first, the job's entry frame last.

    Returns (state bytes, out-of-band buffers, frame identities outermost first). Raises NotResumable when this
    instant cannot be resumed, CheckpointError when some state cannot be serialized.
    """
    job = JOB
    if job is None:
        raise NotResumable("no job")
    _t0 = _perf()
    th = sys.modules.get("threading")
    if th is not None and len(th._active) > 1:
        names = ", ".join(sorted(t.name for t in list(th._active.values()) if t is not th.main_thread()))
        raise CheckpointError(f"the job runs other Python threads ({names}): only single-threaded jobs can be saved")
    plans = []
    n = len(chain)
    for i, fr in enumerate(chain):
        info, shift, special = _origin(fr.code)
        code = info.code
        u = fr.unit
        call_unit = None
        if i == 0:
            if u < shift:
                raise NotResumable("the innermost frame is in a restore prologue")
            t = info.kwnames_fix(info.instr(u - shift).start)
            depth = fr.stacktop
            if depth < 0:
                raise NotResumable("the innermost frame has no valid stack")
            _check_depth(info, t, depth, 0)
            stack = fr.stack(depth)
            marks = info.lasti_marks(t)
        else:
            child = chain[i - 1]
            if u < shift:
                sp = special.get(u)
                if sp is None or sp[0] != "call" or child.is_entry:
                    raise NotResumable("a frame is in a restore prologue")
                t, call_unit = sp[1], sp[2]
                depth = fr.stacktop
                stack = fr.stack(depth)
                marks = frozenset(s for s in info.lasti_marks(call_unit) if s < depth)
            else:
                ins = info.instr(u - shift)
                op = ins.op
                if not child.is_entry:
                    if op not in (CALL, BINARY_SUBSCR) or fr.stacktop < 0:
                        raise NotResumable(f"unexpected caller state at {dis.opname[op]}")
                    t, call_unit = ins.end, ins.opu
                    depth = fr.stacktop
                    _check_depth(info, ins.opu, depth, ins.arg + 2 if op == CALL else 2)
                    stack = fr.stack(depth)
                    marks = frozenset(s for s in info.lasti_marks(ins.opu) if s < depth)
                elif op == CALL_FUNCTION_EX and child.owner != FRAME_OWNED_BY_GENERATOR:
                    d = info.depth_before(ins.opu)
                    full = fr.stack(d)
                    used = 3 + (ins.arg & 1)
                    f = full[d - used + 1]
                    fn = child.func
                    if full[d - used] is not NULL or not (
                        f is fn or (type(f) is types.MethodType and f.__func__ is fn)
                    ):
                        raise NotResumable(f"{code.co_qualname} calls Python through C")
                    t, call_unit = ins.end, ins.opu
                    stack = full[: d - used]
                    marks = frozenset(s for s in info.lasti_marks(ins.opu) if s < len(stack))
                elif op in (FOR_ITER, SEND) and child.owner == FRAME_OWNED_BY_GENERATOR:
                    d = info.depth_before(ins.opu)
                    full = fr.stack(d)
                    slot = d - 1 if op == FOR_ITER else d - 2
                    if full[slot] is not child.gen:
                        raise NotResumable(f"{code.co_qualname} drives a generator through C")
                    t = ins.start
                    stack = full
                    marks = info.lasti_marks(ins.opu)
                else:
                    raise NotResumable(
                        f"{code.co_qualname} is in a call from C ({dis.opname[op]}): wait for it to return"
                    )
        if i == n - 1 and fr.owner == FRAME_OWNED_BY_GENERATOR:
            raise NotResumable("the entry frame is a generator")
        p = _Plan()
        p.code = code
        p.module = fr.globals.get("__name__")
        if not isinstance(p.module, str) or sys.modules.get(p.module) is None or \
                sys.modules[p.module].__dict__ is not fr.globals:
            raise CheckpointError(f"frame {code.co_qualname} runs with globals that are not a module's")
        p.qualname = fr.func.__qualname__ if fr.func is not None else code.co_qualname
        p.kind = K_GEN_RUNNING if fr.owner == FRAME_OWNED_BY_GENERATOR else K_FUNC
        p.target = t
        loc = fr.locals
        p.slots = tuple(j for j, v in enumerate(loc) if v is not NULL)
        p.values = [loc[j] for j in p.slots]
        p.mask = tuple(v is NULL for v in stack)
        p.stack = [_fix_lasti(v, j, marks, shift) for j, v in enumerate(stack)]
        p.marks = tuple(sorted(marks))
        p.call_unit = call_unit
        p.gen = fr.gen if p.kind == K_GEN_RUNNING else None
        p.gen_exc = fr.gen_exc if p.kind == K_GEN_RUNNING else None
        p.closure = _closure_of(code, p.slots, p.values)
        plans.append(p)
    # A running generator's caller re-executes FOR_ITER/SEND, so it does not re-enter; the generator does.
    for i in range(1, n):
        if plans[i - 1].kind == K_GEN_RUNNING:
            plans[i].call_unit = None
    _t1 = _perf()
    gens = {}
    cap = _Capture(job, gens)
    _t2 = _perf()
    for p in plans:
        if p.kind == K_GEN_RUNNING:
            gens[id(p.gen)] = (p.code, p.module, p.qualname, p.closure, p.target, p.slots, p.mask, p.call_unit)
    mod = job.module
    static = _static_names(mod)
    g = {}
    for k, v in mod.__dict__.items():
        if k.startswith("__") and k.endswith("__") or k in static:
            continue
        if isinstance(v, types.ModuleType):
            continue
        if isinstance(v, (types.FunctionType, type)) and getattr(v, "__module__", None) == job.name and \
                getattr(v, "__qualname__", None) == k:
            continue
        g[k] = v
    classes = _class_state(job)
    rng = None
    st = random.getstate()
    if job.rng_owned or st != job.rng0:
        rng = st
    nprng = None
    npr = sys.modules.get("numpy.random")
    if npr is not None and hasattr(npr, "get_state"):
        s = npr.get_state(legacy=True)
        if job.nprng_owned or job.nprng0 is None or not _np_state_eq(s, job.nprng0):
            nprng = s
    root = (
        job.name,
        g,
        classes,
        rng,
        nprng,
        thread_exc,
        [_plan_tuple(p) for p in reversed(plans)],  # outermost first
    )
    buf = io.BytesIO()
    try:
        _Pickler(buf, cap).dump(root)
    except NotResumable:
        raise
    except RecursionError:
        raise CheckpointError("the job's state is nested too deeply to pickle") from None
    except Exception as e:
        if _DEBUG:
            traceback.print_exc()
        raise CheckpointError(_explain_unpicklable(e, g, plans, cap)) from None
    _t3 = _perf()
    idents = [
        (p.module, p.code.co_qualname, p.code.co_firstlineno, code_hash(p.code)) for p in reversed(plans)
    ]
    if _DEBUG:
        print(f"capture: plans {(_t1-_t0)*1e3:.3f} extern {(_t2-_t1)*1e3:.3f} pickle {(_t3-_t2)*1e3:.3f} "
              f"idents {(_perf()-_t3)*1e3:.3f} ms", file=sys.stderr)
    return buf.getbuffer(), [b.raw() for b in cap.buffers], idents


_CLASS_SKIP = (types.FunctionType, staticmethod, classmethod, property, type, types.MemberDescriptorType,
               types.GetSetDescriptorType)


def _job_classes(job):
    """Classes the job's module defines (top level and nested in them), by qualified name."""
    out = {}
    todo = [v for v in list(job.module.__dict__.values()) if isinstance(v, type)]
    while todo:
        c = todo.pop()
        if c.__module__ != job.name or c.__qualname__ in out or "<locals>" in c.__qualname__:
            continue
        out[c.__qualname__] = c
        todo.extend(v for v in list(vars(c).values()) if isinstance(v, type))
    return out


def _class_state(job):
    """Data attributes of the job's own classes (a class-level counter, a registry): part of the module's
    mutable state. Methods and descriptors come back with the class when the module is loaded again."""
    out = {}
    enum = sys.modules.get("enum")
    for qn, c in _job_classes(job).items():
        if enum is not None and isinstance(c, enum.EnumType):
            continue  # members are constants, re-created (and only looked up) when the module loads
        attrs = {k: v for k, v in vars(c).items()
                 if not (k.startswith("__") and k.endswith("__")) and not isinstance(v, _CLASS_SKIP)}
        if attrs:
            out[qn] = attrs
    return out


def _resolve_qualname(mod, qualname):
    o = mod
    for part in qualname.split("."):
        o = getattr(o, part, None)
        if o is None:
            return None
    return o


def _np_state_eq(a, b):
    try:
        return a[0] == b[0] and a[2:] == b[2:] and bytes(memoryview(a[1])) == bytes(memoryview(b[1]))
    except Exception:
        return False


def _explain_unpicklable(err, g, plans, cap):
    """Find which variable holds what cannot be pickled, for a message that names it."""

    def fails(v):
        try:
            _Pickler(io.BytesIO(), cap).dump(v)
            return None
        except Exception as e:
            return e

    why = f"{type(err).__name__}: {err}"
    for k, v in g.items():
        e = fails(v)
        if e is not None:
            return f"global {k!r} of module {cap.job.name} holds a {_tname(v)} that cannot be saved ({e})"
    for p in reversed(plans):  # innermost first reads best
        names = _slot_names(p.code)
        where = f"frame {p.qualname} ({p.code.co_filename}:{p.code.co_firstlineno})"
        for s, v in zip(p.slots, p.values):
            if type(v) is types.CellType:
                try:
                    v = v.cell_contents
                except ValueError:
                    continue
            e = fails(v)
            if e is not None:
                name = names[s] if s < len(names) else f"#{s}"
                return f"local variable {name!r} in {where} holds a {_tname(v)} that cannot be saved ({e})"
        for j, v in enumerate(p.stack):
            if v is NULL:
                continue
            e = fails(v)
            if e is not None:
                return f"a value on the stack of {where} (slot {j}) is a {_tname(v)} that cannot be saved ({e})"
    return f"the job's state cannot be saved: {why}"


def _tname(v):
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


# ---------------------------------------------------------------------------------------------------------------
# Restore.


def restore(data, buffers):
    """Rebuild the checkpointed job. Returns (callable that continues the job, the handled exception)."""
    global JOB
    _t0 = _perf()
    name, g, classes, rng, nprng, thread_exc, plans = pickle.loads(data, buffers=buffers)
    if _DEBUG:
        print(f"restore: unpickle {(_perf() - _t0) * 1e3:.3f} ms", file=sys.stderr)
    mod = sys.modules.get(name)
    if mod is None:
        raise RestoreError(f"the job module {name!r} is not loaded")
    _ta = _perf()
    mod.__dict__.update(g)
    for qualname, attrs in classes.items():
        cls = _resolve_qualname(mod, qualname)
        if cls is None:
            raise RestoreError(f"class {qualname} of the job's module no longer exists")
        for k, v in attrs.items():
            setattr(cls, k, v)
    job = JOB if JOB is not None and JOB.module is mod else _Job(mod)
    if _DEBUG:
        print(f"restore: job {(_perf() - _ta) * 1e3:.3f} ms", file=sys.stderr)
    if rng is not None:
        random.setstate(rng)
        job.rng_owned = True
    if nprng is not None:
        import numpy.random as npr

        npr.set_state(nprng)
        job.nprng_owned = True
    JOB = job
    _t1 = _perf()
    inner = None
    for tup in reversed(plans):  # innermost first
        code, module, qualname, kind, target, slots, values, mask, stack, marks, call_unit, gen, gen_exc = tup
        if _DEBUG:
            print(f"restore {qualname} {kind} target={target} call={call_unit} stack={[type(x).__name__ for x in stack]} mask={mask}", file=sys.stderr)
        info = code_info(code)
        if kind == K_GEN_RUNNING:
            # The generator object was made (as a shell) while unpickling; fill it now and advance it to its
            # prologue's yield. Its caller re-executes FOR_ITER/SEND to resume it.
            _, m = _SHELLS.pop(id(gen))
            m.fill(values, _shift_marks(stack, marks, m.shift))
            if m.holder is not None:
                m.holder.append(inner)
            next(gen)
            if gen_exc is not None:
                _rs.set_gen_exc(gen, gen_exc)
            inner = None
            continue
        t = _template(info, kind, target, slots, mask, call_unit, None)
        m = _Morph(info, t)
        m.fill(values, _shift_marks(stack, marks, t.shift))
        if m.holder is not None:
            m.holder.append(inner)
        fn = _morph_function(m.code, code, module, qualname, _closure_of(code, slots, values))
        inner = fn
    if _SHELLS:
        _SHELLS.clear()
    if _DEBUG:
        print(f"restore: state {(_t1 - _t0) * 1e3:.3f} ms, frames {(_perf() - _t1) * 1e3:.3f} ms", file=sys.stderr)
    return inner, thread_exc


def _shift_marks(stack, marks, shift):
    if not marks:
        return stack
    out = list(stack)
    for s in marks:
        if type(out[s]) is int:
            out[s] += shift
    return out


# ---------------------------------------------------------------------------------------------------------------
# Jobs: loading a module from source, starting a run, encoding the result.


_JOB_MODULES = set()  # names of modules loaded from job source (never indexed as library state)


def load_module(name, filename, source):
    """Compile and execute a job's module under `name`. SyntaxError propagates (the worker reports it)."""
    old = sys.modules.get(name)
    if old is not None and name not in _JOB_MODULES:
        raise ImportError(f"the job's module name {name!r} is already taken by an installed module; rename the job")
    code = compile(source, filename, "exec", dont_inherit=True)
    _JOB_MODULES.add(name)
    mod = types.ModuleType(name)
    mod.__file__ = filename
    sys.modules[name] = mod
    _FILE_MODULE[filename] = name
    _MODULE_INDEX.pop(name, None)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        exec(code, mod.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def start(mod, entry, input_json):
    """Resolve the entry function and decode the input. Returns (function, argument)."""
    global JOB
    f = getattr(mod, entry, None)
    if f is None or not callable(f):
        raise LookupError(f"module has no function {entry!r}")
    arg = json.loads(input_json)
    JOB = _Job(mod)
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
    global JOB
    JOB = None
