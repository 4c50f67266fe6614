"""Static analysis of a code object: instruction boundaries, the stack depth and the stack slots holding a saved
``lasti`` before every instruction, and the map from a morph back to the code it was made from.

Pure: it reads code objects and never runs them. Owns the per-code cache ``_INFO``.
"""

import dis
import pickle

from .base import NotResumable, _perf, _rs
from .ops import (
    _BACKWARD, _CACHES, _HAVE_ARGUMENT, _JREL, _NO_FALLTHROUGH, CALL, COPY, EXTENDED_ARG, KW_NAMES, PRECALL,
    RETURN_GENERATOR, SWAP,
)
from .tables import _leading_entries

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
        self.table = [
            _Entry(e.start // 2, e.end // 2, e.target // 2, e.depth, e.lasti) for e in dis._parse_exception_table(code)
        ]
        self._depth = None
        self._marks = None
        self._positions = None
        self._leading = None
        self._targets = None
        self._ops = None
        self._some = None
        native = _NATIVE[0]
        if native is not None:
            try:
                self.owner, *self._cols, flowed = native(
                    raw, [(e.start, e.end, e.target, e.depth, e.lasti) for e in self.table], *_OP_SETS)
            except ValueError:  # code the walk cannot take: the Python one raises what it raises, when asked
                pass
            else:
                self._some = {}
                if flowed is not None:
                    self._depth, self._marks = flowed
                return
        self._decode(raw)

    def _decode(self, raw):
        n = len(raw) // 2
        ops = self._ops = []
        owner = self.owner = [0] * n
        caches = _CACHES
        i = 0
        while i < n:
            start = i
            op, arg = raw[2 * i], raw[2 * i + 1]
            while op == EXTENDED_ARG:
                i += 1
                op, arg = raw[2 * i], (arg << 8) | raw[2 * i + 1]
            end = i + 1 + caches[op]
            k = len(ops)
            if end == start + 1:
                owner[start] = k
            else:
                stop = min(end, n)
                owner[start:stop] = [k] * (stop - start)
            ops.append(_Instr(start, i, op, arg, end))
            i = end

    @property
    def ops(self):
        """The instructions, in order (made when first asked for, from the native walk's columns)."""
        ops = self._ops
        if ops is None:
            ops = list(map(_Instr, *self._cols))
            for k, ins in self._some.items():  # the ones handed out already stay the same objects
                ops[k] = ins
            self._ops = ops
        return ops

    def _at(self, k):
        """Instruction number `k`, made alone while the whole list is not needed."""
        ops = self._ops
        if ops is not None:
            return ops[k]
        ins = self._some.get(k)
        if ins is None:
            c = self._cols
            ins = self._some[k] = _Instr(c[0][k], c[1][k], c[2][k], c[3][k], c[4][k])
        return ins

    def instr(self, unit):
        return self._at(self.owner[unit])

    def after_call(self, ins):
        """Units a frame stopped in `ins` (a call into C in progress) goes on at when the call returns normally:
        the next instruction, a jump's target (FOR_ITER ending its loop, a test calling ``__bool__``), and after
        PRECALL the end of its CALL (a specialised PRECALL makes the call itself and skips the CALL)."""
        n = len(self.owner)
        out = []
        if ins.op not in _NO_FALLTHROUGH and ins.end < n:
            out.append(ins.end)
            if ins.op == PRECALL:
                out.append(self.instr(ins.end).end)
        if ins.op in _JREL:
            out.append(ins.end - ins.arg if ins.op in _BACKWARD else ins.end + ins.arg)
        return tuple(u for u in out if u < n)

    def cover(self, unit):
        for e in self.table:
            if e.start <= unit < e.end:
                return e
        return None

    def positions(self):
        if self._positions is None:
            self._positions = list(self.code.co_positions())
        return self._positions

    def leading(self):
        """The code's location table's leading entries (`tables._leading_entries`), for its morphs' tables."""
        if self._leading is None:
            self._leading = _leading_entries(self.code)
        return self._leading

    def _analyze(self):
        t0 = _perf()
        try:
            self._analyze_flow()
        finally:
            ANALYSED[1] += _perf() - t0

    def _analyze_flow(self):
        ops = self.ops
        owner = self.owner
        n_units = len(owner)
        depth = [None] * len(ops)
        marks = [None] * len(ops)
        # The handler covering each instruction (`cover` of its opcode's unit), found once per entry.
        handler = [None] * len(ops)
        for e in self.table:
            if e.end > e.start:
                for idx in range(owner[e.start], owner[min(e.end, n_units) - 1] + 1):
                    if handler[idx] is None and e.start <= ops[idx].opu < e.end:
                        handler[idx] = e
        effect = _STACK_EFFECT
        empty = frozenset()
        work = [(0, 0, empty)]
        while work:
            idx, d, mk = work.pop()
            if depth[idx] is not None:
                continue
            depth[idx] = d
            marks[idx] = mk
            ins = ops[idx]
            op, arg = ins.op, ins.arg
            e = handler[idx]
            if e is not None:
                hm = frozenset(s for s in mk if s < e.depth) if mk else empty
                if e.lasti:
                    hm |= {e.depth}
                work.append((owner[e.target], e.depth + 1 + int(e.lasti), hm))
            oparg = arg if op >= _HAVE_ARGUMENT else None
            succ = []
            # The compiler books the popping of a call's arguments on PRECALL; at run time CALL does it all.
            if op == RETURN_GENERATOR:  # the frame resumes with the value sent to it, which POP_TOP drops
                succ.append((owner[ins.end], d + 1))
            elif op == PRECALL:
                succ.append((owner[ins.end], d))
            elif op == CALL:
                succ.append((owner[ins.end], d - arg - 1))
            elif op not in _NO_FALLTHROUGH and ins.end < n_units:
                key = (op, oparg, False)
                se = effect.get(key)
                if se is None:
                    se = effect[key] = dis.stack_effect(op, oparg, jump=False)
                succ.append((owner[ins.end], d + se))
            if op in _JREL:
                t = ins.end - arg if op in _BACKWARD else ins.end + arg
                key = (op, oparg, True)
                se = effect.get(key)
                if se is None:
                    se = effect[key] = dis.stack_effect(op, oparg, jump=True)
                succ.append((owner[t], d + se))
            for nidx, nd in succ:
                if depth[nidx] is not None:  # reached already: the first visit decides (as when popped)
                    continue
                if not mk:
                    nm = empty
                elif op == COPY:
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

    def pushed_by(self, unit, slot):
        """The instruction that pushed value-stack slot `slot` as seen by the instruction at `unit`, when that is
        certain: the last one before it at depth `slot` that leaves `slot + 1`, with no jump landing between it and
        `unit` (so every path to `unit` went through it), and no instruction between them that may write that
        slot (`_keeps_slot`). Else None."""
        if self._depth is None:
            self._analyze()
        if self._targets is None:
            self._targets = frozenset(
                self.owner[ins.end - ins.arg if ins.op in _BACKWARD else ins.end + ins.arg]
                for ins in self.ops if ins.op in _JREL
            ) | frozenset(self.owner[e.target] for e in self.table)
        k = self.owner[unit]
        for idx in range(k - 1, -1, -1):
            if idx + 1 in self._targets or self._depth[idx] is None:
                return None
            d0, d1 = self._depth[idx], self._depth[idx + 1]
            if d0 == slot and d1 == slot + 1:
                return self.ops[idx]
            if not _keeps_slot(self.ops[idx], d0, d1, slot):
                return None
        return None

    def lasti_marks(self, unit):
        """Stack slots holding a saved `lasti` (an instruction offset) before the instruction at `unit`."""
        if self._marks is None:
            self._analyze()
        return self._marks[self.owner[unit]] or frozenset()

    def kwnames_fix(self, unit):
        """A stop between KW_NAMES and CALL would lose the keyword names (a C local of the eval loop):
        resume at the KW_NAMES instead, which has no stack effect. PRECALL is idempotent on its own output."""
        idx = self.owner[unit]
        ins = self._at(idx)
        if ins.op == CALL and idx > 0 and self._at(idx - 1).op == PRECALL:
            idx -= 1
            ins = self._at(idx)
        if ins.op == PRECALL and idx > 0 and self._at(idx - 1).op == KW_NAMES:
            return self._at(idx - 1).start
        return unit


_INFO = {}


_STACK_EFFECT = {}  # (op, oparg, jump) -> dis.stack_effect
# The walk in Rust (`_mlrs.code_flow`, src/py/codeflow.rs) where the worker provides it, with the opcode sets it
# needs as 256 flags each; absent in the runtime's unit tests.
_NATIVE = [getattr(_rs, "code_flow", None)]
_OP_SETS = (bytes(_CACHES), bytes(op in _JREL for op in range(256)), bytes(op in _BACKWARD for op in range(256)),
            bytes(op in _NO_FALLTHROUGH for op in range(256)))
ANALYSED = [0, 0.0]  # codes analysed, and seconds spent (ML_DEBUG's capture line)


def code_info(code):
    info = _INFO.get(code)
    if info is None or info.code is not code:
        t0 = _perf()
        info = _INFO[code] = CodeInfo(code)
        ANALYSED[0] += 1
        ANALYSED[1] += _perf() - t0
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


# Instructions that pop nothing (they only push, or read the stack); and those that push nothing.
_PURE_PUSH = frozenset(dis.opmap[n] for n in (
    "LOAD_FAST", "LOAD_CONST", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_NAME", "LOAD_CLASSDEREF",
    "PUSH_NULL", "COPY", "LOAD_ASSERTION_ERROR", "LOAD_BUILD_CLASS", "NOP", "KW_NAMES", "EXTENDED_ARG"))
_POP_ONLY = frozenset(dis.opmap[n] for n in (
    "STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF", "STORE_ATTR", "STORE_SUBSCR", "DELETE_SUBSCR",
    "POP_TOP"))
# Instructions that may pop two items or more and push two or more (rewriting items below the top in place).
_DEEP_REWRITE = frozenset(dis.opmap[n] for n in ("SWAP", "CHECK_EG_MATCH", "PREP_RERAISE_STAR"))


def _keeps_slot(ins, d0, d1, slot):
    """Whether an instruction running at depth `d0` (leaving `d1`) certainly leaves stack slot `slot` as it was:
    it pops nothing when the slot is the top (a LOAD at `slot + 1`), pushes nothing when it ends right above it
    (a STORE), and otherwise runs above it, not one that rewrites items below the top (SWAP, except* matching).
    An instruction that pops the slot and pushes a new value there (a subscript, an attribute, an operator, a
    call ending at `slot + 1`, an unpacking) does not: `(p, a)[1](n)` leaves `a` where `p` was pushed."""
    if d0 <= slot or d1 <= slot:
        return False
    if d0 == slot + 1:
        return ins.op in _PURE_PUSH
    if d1 == slot + 1:
        return ins.op in _POP_ONLY
    if ins.op == SWAP:
        return d0 - ins.arg > slot
    return ins.op not in _DEEP_REWRITE
