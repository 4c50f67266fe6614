"""Capture: decide whether the job can be resumed at this instant and pickle its state.

The Rust half hands :func:`capture` one ``RawFrame`` per frame, innermost first; each becomes a plan (code,
resume point, locals, value stack) checked against the static analysis, and the plans are pickled with the
job module's mutable globals, its classes' data, the RNG states and the handled exception.

Size: the frame-by-frame resumability rules and the parts of the root the restore reads, kept in one file so
that the order of the checks and the layout of the root can be read together.
"""

import contextvars
import dis
import gc
import importlib
import io
import os
import pickle
import random
import sys
import time
import traceback
import types

from . import state
from .analysis import ANALYSED, _origin
from .base import (
    _BASELINE, _DEBUG, _PROFILE, NULL, CheckpointError, HeldUntilReturn, NotResumable, RestoreError, WaitForReturn,
    _perf, _rs, module_items, modules_since,
)
from .identity import code_hash
from .morph import K_FUNC, K_GEN_RUNNING, _closure_of, _fix_lasti, _slot_names, _unit_of_call
from .ops import (
    _SUPERINSTRUCTIONS, BINARY_SUBSCR, CALL, FOR_ITER, FRAME_OWNED_BY_GENERATOR, JUMP_BACKWARD_QUICK, LOAD_CONST,
    LOAD_FAST, PRECALL, SEND, STORE_FAST,
)
from .trampolines import _THROUGH_C, _drives_generator, _fed_by_map, _in_pass, _pulls_from, _through_c
from .pickler import (
    _EXTERN, _LRU, _AbcRegistered, _Capture, _import_modules, _library_globals, _lookup, _module_key, _Pickler,
    _refuse_raw_addresses, extern_holds, held_module_locks, index_defaults,
)
from .refs import portable_value
from .state import _JOB_MODULES, SETTINGS, STREAMS, _static_names, logging_marks, process_marks


class _Imports:
    """The first item of a checkpoint: the modules the job imported while it ran, imported again (in the same
    order) before anything else is unpickled."""

    __slots__ = ("names",)

    def __init__(self, names):
        self.names = names

    def __reduce__(self):
        return _import_modules, (self.names,)


def _job_imports(job):
    """What the job imported while it ran, in import order: what its checkpoint said when it was restored, then
    what sys.modules gained since it started or was restored (found from the end: ``base.modules_since``)."""
    new = modules_since(job.baseline)
    if new is None:
        new = [m for m in list(sys.modules) if m not in job.baseline]
    seen = set()
    return [m for m in (*job.carried, *new) if not (m in seen or seen.add(m)) and _reimportable(m)]


def _reimportable(name):
    m = sys.modules.get(name)
    return m is not None and name not in _JOB_MODULES and name != "__main__" and \
        not name.startswith("microlambda_rt") and getattr(m, "__spec__", None) is not None


_LIBS = [-1, (), None]  # [len(sys.modules) when computed, the names then, a state.ModuleMark then]
# The runtime and what it imports itself: every worker and zygote has them.
_RUNTIME_PACKAGES = frozenset(("microlambda_rt", "__main__", "cloudpickle"))


def library_imports():
    """The sorted top-level names of the library packages in sys.modules (not stdlib, not the job's, not the
    runtime's, not private, not built in): what a node's zygote must have imported for a restore of this state
    to pay no import. The node picks or starts a zygote by them; recomputed only when modules were imported
    since (a checkpoint of a running job usually finds sys.modules unchanged)."""
    n = len(sys.modules)
    if _LIBS[0] == n:
        return _LIBS[1]
    std = sys.stdlib_module_names
    # Only the modules imported since the last answer (a fresh child of a zygote: the zygote's answer), when
    # they can be told from the end of sys.modules.
    new = modules_since(_LIBS[2])
    if new is None and _DEBUG:
        print(f"library imports: all {len(sys.modules)} modules walked (mark {_LIBS[2] is not None}, "
              f"last {list(reversed(sys.modules))[:3]})", file=sys.stderr)
    names = set() if new is None else set(_LIBS[1])
    for name, m in module_items(new):
        top = name.partition(".")[0]
        if top in names or top in std or top.startswith("_") or top in _RUNTIME_PACKAGES:
            continue
        if name in _JOB_MODULES or top in _JOB_MODULES:
            continue
        try:
            if getattr(m, "__file__", None) is None:
                continue
        except Exception:  # a lazy module that loads on attribute access and fails
            continue
        names.add(top)
    out = tuple(sorted(names))
    _LIBS[:] = n, out, state.ModuleMark()
    return out


def _method_self(p):
    """The object a frame is a method of (its first argument, when its class's attribute of that name runs this
    code), or None."""
    code = p.code
    if not code.co_argcount or not p.slots or p.slots[0] != 0:
        return None
    me = p.values[0]
    if type(me) is types.CellType:
        try:
            me = me.cell_contents
        except ValueError:
            return None
    f = _lookup(type(me), code.co_name)  # the class dict entry, without running a descriptor
    if isinstance(f, (property, staticmethod, classmethod)):
        f = f.fget if isinstance(f, property) else f.__func__
    return me if getattr(f, "__code__", None) is code else None


def _check_depth(info, unit, depth, consumed):
    """The static stack analysis must agree with the interpreter wherever the real stack depth is known; a
    disagreement would make resumes at statically-known depths wrong, so it refuses the checkpoint."""
    expect = info.depth_before(unit) - consumed
    if expect != depth:
        raise CheckpointError(
            f"engine self-check failed in {info.code.co_qualname}: stack depth {depth} at offset {unit * 2}, "
            f"analysis says {expect}"
        )


class _Plan:
    """What one frame needs to be rebuilt. Pickled as a plain tuple."""

    __slots__ = ("code", "module", "qualname", "kind", "target", "slots", "values", "mask", "stack", "marks",
                 "call_unit", "gen", "gen_exc", "closure")


def _plan_tuple(p):
    return (p.code, p.module, p.qualname, p.kind, p.target, p.slots, p.values, p.mask, p.stack, p.marks,
            p.call_unit, p.gen, p.gen_exc)


def capture(chain, thread_exc):
    """Capture the job at this instant. `chain`: RawFrames, innermost first, the job's entry frame last.

    Returns (state bytes, out-of-band buffers, frame identities outermost first, library imports as from
    :func:`library_imports`, and the seconds of :func:`_lower_bound` under ML_BASELINE, else None). Raises
    NotResumable when this instant cannot be resumed, CheckpointError when some state cannot be serialized. Anything else is an engine
    error, reported with where it was raised.

    The garbage collector is held off for the capture: a collection triggered by the capture's own allocations
    could run finalizers and weakref callbacks of the job's garbage, which may change the state being saved, in
    the middle of saving it (and a full collection adds its ~100 ms to the job's pause). It runs at the job's
    next allocation past the threshold instead, as it would have: the count of young allocations the capture's
    own churn left is put back first (`_count_back`).
    """
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    young = gc.get_count()[0]
    failed = []
    try:
        return _capture(chain, thread_exc)
    except (NotResumable, CheckpointError) as e:
        failed.append(_detached(e))
    except Exception as e:
        where = traceback.extract_tb(e.__traceback__)[-1]
        failed.append(RuntimeError(f"{type(e).__name__}: {e} (at {where.filename}:{where.lineno} in {where.name})"))
        _detached(e)
    finally:
        _count_back(young)
        if collecting:
            gc.enable()
    raise failed.pop()  # held by no variable of this frame, which its traceback holds


def _count_back(young):
    """Put the collector's count of young allocations back to `young`, what it was when the capture began. The
    capture's own objects are all freed by then, but CPython counts a tuple (or list, dict) freed onto its free
    list as still allocated: a capture left the count thousands over the threshold, and the job's first
    allocation after it (in the worker's own code, before the pause ends) ran a collection, a full one when its
    turn came (150-190 ms of pause: `python/bench/capture_gc.py`). With the count put back, collections
    come where the job's own allocations bring them, as in a run without checkpoints. Not done where the
    worker's helper cannot find the count (`_mlrs.young_count` checks the collector's layout against
    `gc.get_count()`), nor when the count is lower than it was (a collection ran)."""
    put = getattr(_rs, "young_count", None)
    now = gc.get_count()[0]
    if put is not None and now > young:
        put(now, gc.get_threshold()[0], young)


def _detached(e):
    """`e` without its traceback, cause and context: they hold the capture's frames, and those (through f_back)
    the job's. A capture that waits raises; had its exception kept them, a reference cycle through a frame
    that holds it (`e = WaitForReturn(...)`) would keep the job's frames, and what they hold when they return,
    alive until the next collection: a weak reference the job relies on would not die when it should."""
    e.__traceback__ = e.__cause__ = e.__context__ = None
    return e


class _profiled(_Pickler):
    """ML_PROFILE: the pickler, printing how many objects of each type it reduced and the time its reducers took
    (cProfile cannot run inside the trace function the capture runs in)."""

    def __init__(self, file, cap, known=None):
        super().__init__(file, cap, known)
        self.seen = {}

    def reducer_override(self, obj):
        t0 = time.thread_time()
        try:
            return super().reducer_override(obj)
        finally:
            n, s = self.seen.get(type(obj), (0, 0.0))
            self.seen[type(obj)] = (n + 1, s + time.thread_time() - t0)

    def dump(self, obj):
        t0, c0 = _perf(), time.thread_time()
        super().dump(obj)
        total, cpu = (_perf() - t0) * 1e3, (time.thread_time() - c0) * 1e3
        rows = sorted(self.seen.items(), key=lambda kv: -kv[1][1])[:20]
        print(f"capture profile: pickling {total:.3f} ms ({cpu:.3f} ms of CPU), reducers "
              f"{sum(s for _, s in self.seen.values()) * 1e3:.3f} ms of CPU", file=sys.stderr)
        for t, (n, s) in rows:
            print(f"  {s * 1e3:9.3f} ms {n:8d}x {t.__module__}.{t.__qualname__}", file=sys.stderr)


# The instructions a superinstruction of 3.11 executes as its second half.
_SECOND_HALVES = frozenset((LOAD_FAST, LOAD_CONST, STORE_FAST))

# The ids of the import system's own globals (the frozen importlib._bootstrap and _bootstrap_external): a
# frame runs import code when its globals are one of these dicts.
_IMPORT_GLOBALS = frozenset(
    id(sys.modules[name].__dict__) for name in ("_frozen_importlib", "_frozen_importlib_external") if name in sys.modules
)


def _where_it_returns(e, i, fr, info, shift, ins):
    """Complete a WaitForReturn with where frame `i` goes on after its call: the units of its own (possibly
    morphed) code where a breakpoint may go, each the first the frame dispatches on there (see
    `_dispatched_from`)."""
    adaptive = fr.code._co_code_adaptive
    units = []
    for u in info.after_call(ins):
        u = _dispatched_from(info, shift, adaptive, u + shift)
        if u is not None and u not in units:
            units.append(u)
    e.index, e.units, e.breakpoint = i, tuple(units), JUMP_BACKWARD_QUICK | (1 << 8)
    return e


def _dispatched_from(info, shift, adaptive, u):
    """The first unit at or after `u` that the frame dispatches on when it goes on at `u`, or None. Never a
    unit that a superinstruction before it may execute as its second half: that reads the unit's argument
    without dispatching on its opcode, so a breakpoint there would be read as an argument, and never reached.
    A second half is one plain unit (LOAD_FAST, LOAD_CONST, STORE_FAST), so the frame dispatches on the unit
    after it: `x = None` then a line that loads a local is quickened into STORE_FAST__LOAD_FAST, and a
    ``__del__`` run by the store returns into the load; its wait ends at the unit after the load."""
    n = shift + len(info.owner)
    while u < n and u > 0 and adaptive[2 * (u - 1)] in _SUPERINSTRUCTIONS:
        o = u - shift
        if o < 1:
            return None  # the unit before is the morph's prologue
        half, before = info.instr(o), info.instr(o - 1)
        if before.opu != o - 1 or half.start != o or half.end != o + 1 or half.op not in _SECOND_HALVES:
            return None  # the unit before is a cache or an argument, not a superinstruction
        u += 1
    return u if u < n else None


def _wait_for_return(e, chain, i):
    """Complete `e` (a WaitForReturn) with where frame `i` goes on after its current call; None when the frame
    is in a restore prologue, where no breakpoint can go."""
    fr = chain[i]
    info, shift, _ = _origin(fr.code)
    if fr.unit < shift:
        return None
    return _where_it_returns(e, i, fr, info, shift, info.instr(fr.unit - shift))


def _wait_for_imports(chain):
    """No instant inside an import is resumable: the import lock (`find_spec`), the module's lock
    (`import_module`) and the half-made module in sys.modules belong to this process. The wait is for the
    outermost import to return, untraced; nothing inside it is tried."""
    for i in range(len(chain) - 1, 0, -1):
        if id(chain[i - 1].globals) in _IMPORT_GLOBALS and id(chain[i].globals) not in _IMPORT_GLOBALS:
            e = WaitForReturn(f"{chain[i].code.co_qualname} is in an import: wait for it to return")
            raise _wait_for_return(e, chain, i) or e


def _complete_fillers(fillers, plans, chain, filled):
    """Give each frame whose call fills a new container from the generator it drives (`list(g)`: see
    `trampolines._drives_generator`) that container, found where only that call's C holds it
    (`_mlrs.held_by_c`), in the call's slot as the function that resumes the call. When it is not found as
    exactly one object, the frame waits for its call to return, as any call from C (the innermost such)."""
    # What a frame's variable holds is not C's: the job's and the libraries' frames' variables are in the plans,
    # which hold them (a reference besides the frame's); the runtime's frames that run the job get theirs from
    # their f_locals, held until the search ends. The capture's own frames need none: what they hold is newer
    # than the C call, so its address cannot be left over in that call's C frames.
    codes = {id(fr.code) for fr in chain}
    keep, frame, outer = [], sys._getframe(), False
    while frame is not None:
        if id(frame.f_code) in codes:
            outer = True
        elif outer:
            keep.append(frame.f_locals)
        frame = frame.f_back
    for at, (slot, kind, rest, cls), where in fillers:
        i = where[0]
        t0 = _perf()
        held, words, named = _rs.held_by_c(kind, chain[i], chain[i - 1])
        if _DEBUG:
            print(f"capture: {where[2].code.co_qualname} fills a {kind.__name__} from a generator at unit "
                  f"{where[4].start}: {words} words of C stack between them name {named} {kind.__name__}s with "
                  f"one reference, {len(held)} held by no object ({(_perf() - t0) * 1e3:.3f} ms): "
                  f"{[repr(o)[:50] for o in held]}", file=sys.stderr)
        if len(held) != 1:
            e = WaitForReturn(f"{where[2].code.co_qualname} runs a generator through a call from C that fills a "
                              "container the capture could not find: wait for it to return")
            raise _where_it_returns(e, *where)
        f = _Filled()
        f.cls, f.rest, f.done = cls, rest, held[0]
        plans[at].stack[slot] = f
        filled.append(f)


def _capture(chain, thread_exc):
    job = state.JOB
    if job is None:
        raise NotResumable("no job")
    _t0 = _perf()
    _c0 = time.thread_time() if _DEBUG else 0.0
    _a0 = tuple(ANALYSED) if _DEBUG else None
    th = sys.modules.get("threading")
    if th is not None and len(th._active) > 1:
        names = ", ".join(sorted(t.name for t in list(th._active.values()) if t is not th.main_thread()))
        raise CheckpointError(f"the job runs other Python threads ({names}): only single-threaded jobs can be saved")
    _wait_for_imports(chain)
    plans = []
    fillers = []
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
                if sp is not None and sp[0] == "pass" and child.is_entry:
                    t, call_unit, stack, marks = _in_pass(info, fr, sp, child)
                elif sp is None or sp[0] != "call" or child.is_entry:
                    raise NotResumable("a frame is in a restore prologue")
                else:
                    t, call_unit = sp[1], sp[2]
                    depth = fr.stacktop
                    stack = fr.stack(depth)
                    marks = frozenset(s for s in info.lasti_marks(_unit_of_call(call_unit)) if s < depth)
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
                elif child.owner != FRAME_OWNED_BY_GENERATOR and op in (PRECALL, CALL) and \
                        (fed := _fed_by_map(info, fr, ins, child)) is not None:
                    t, call_unit, stack, marks, filler = fed
                    if filler is not None:
                        fillers.append((len(plans), filler, (i, fr, info, shift, ins)))
                elif child.owner != FRAME_OWNED_BY_GENERATOR and op in _THROUGH_C:
                    try:
                        t, call_unit, stack, marks = _through_c(info, fr, ins, child)
                    except WaitForReturn as e:
                        raise _where_it_returns(e, i, fr, info, shift, ins) from None
                elif op in (PRECALL, CALL) and child.owner == FRAME_OWNED_BY_GENERATOR:
                    try:
                        t, call_unit, stack, marks, filler = _drives_generator(info, fr, ins, child)
                    except WaitForReturn as e:
                        raise _where_it_returns(e, i, fr, info, shift, ins) from None
                    if filler is not None:
                        fillers.append((len(plans), filler, (i, fr, info, shift, ins)))
                elif op in (FOR_ITER, SEND) and child.owner == FRAME_OWNED_BY_GENERATOR:
                    d = info.depth_before(ins.opu)
                    full = fr.stack(d)
                    slot = d - 1 if op == FOR_ITER else d - 2
                    if full[slot] is not child.gen and (op != FOR_ITER or not _pulls_from(full[slot], child.gen)):
                        # An iterator of C's own drives it (zip(a, gen), islice, groupby): nothing under it can be
                        # resumed, but the frame goes on where it would after that item, so the wait is untraced
                        # and ends at the first instant there (a breakpoint), as for any call from C.
                        e = WaitForReturn(f"{code.co_qualname} drives a generator through C ({dis.opname[op]})")
                        raise _where_it_returns(e, i, fr, info, shift, ins)
                    t = ins.start
                    stack = full
                    marks = info.lasti_marks(ins.opu)
                else:
                    e = WaitForReturn(f"{code.co_qualname} is in a call from C ({dis.opname[op]}): wait for it to return")
                    raise _where_it_returns(e, i, fr, info, shift, ins)
        if i == n - 1 and fr.owner == FRAME_OWNED_BY_GENERATOR:
            raise NotResumable("the entry frame is a generator")
        p = _Plan()
        p.code = code
        p.module = _module_key(fr.globals)
        if p.module is None:  # code run by exec/eval in a namespace of its own: wait for it to return
            raise NotResumable(f"frame {code.co_qualname} runs with globals that are not a module's")
        p.qualname = fr.func.__qualname__ if fr.func is not None else code.co_qualname
        index_defaults(fr.func, code if code is not fr.code else None)
        p.kind = K_GEN_RUNNING if fr.owner == FRAME_OWNED_BY_GENERATOR else K_FUNC
        p.target = t
        loc = fr.locals
        p.slots = tuple(j for j, v in enumerate(loc) if v is not NULL)
        p.values = [loc[j] for j in p.slots]
        _refuse_raw_addresses(p.values)
        _refuse_raw_addresses(stack)
        p.mask = tuple(v is NULL for v in stack)
        p.stack = [_fix_lasti(v, j, marks, shift) for j, v in enumerate(stack)]
        p.marks = tuple(sorted(marks))
        p.call_unit = call_unit
        p.gen = fr.gen if p.kind == K_GEN_RUNNING else None
        p.gen_exc = fr.gen_exc if p.kind == K_GEN_RUNNING else None
        p.closure = _closure_of(code, p.slots, p.values)
        plans.append(p)
    filled = []
    try:
        if fillers:
            _complete_fillers(fillers, plans, chain, filled)
        if _DEBUG:
            print(f"capture: plans analysed {ANALYSED[0] - _a0[0]} codes in {(ANALYSED[1] - _a0[1]) * 1e3:.3f} ms",
                  file=sys.stderr)
        return _pickled(job, chain, plans, thread_exc, _t0, _c0)
    finally:
        for f in filled:  # the container's one reference besides C's goes with the capture (the next one looks for it)
            f.done = None


class _Filled:
    """The resuming call of a C call filling a container (`_complete_fillers`), pickled as the call on the
    container found. It drops the container when the capture ends: a reference the capture left behind (in
    garbage waiting for the collector) would hide the container from the next capture's search."""

    __slots__ = ("cls", "rest", "done")

    def __reduce__(self):
        return self.cls, (self.rest, self.done)


def _pickled(job, chain, plans, thread_exc, _t0, _c0=0.0):
    """The second half of a capture: the state around the frames' plans, pickled."""
    n = len(chain)
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
        me = _method_self(p)
        if me is not None:
            cap.busy[id(me)] = me
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
    _t2b = _perf()
    own_classes = _job_classes(job)  # walked once: class data, functions and Enum members all read it
    classes = _class_state(job, own_classes)
    funcs = _job_functions(job, own_classes)
    cap.job_cells = _job_cells(job, funcs)
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
    imported = _job_imports(job)
    root = (
        _Imports(imported) if imported else None,  # None: what importing nothing unpickles to (48 bytes less)
        job.name,
        g,
        classes,
        rng,
        nprng,
        thread_exc,
        [_plan_tuple(p) for p in reversed(plans)],  # outermost first
        _library_globals(plans),
        _contexts(job, lambda v: _Pickler(io.BytesIO(), _Capture(job, gens)).dump(v)),
        _function_state(job, funcs, classes),
        held_module_locks(),
        _member_state(job, own_classes),
    )
    buf = io.BytesIO()
    _t2c = _perf()
    limit = sys.getrecursionlimit()
    # Room for the pickler's own recursion (one level per nested container) on top of the job's frames and the
    # capture's: nesting that plain pickle takes in the job is taken here too.
    sys.setrecursionlimit(limit + _PICKLE_DEPTH)
    pk = (_profiled if _PROFILE else _Pickler)(buf, cap)
    try:
        pk.dump(root)
        targets = _rs.id_targets(pk) if hasattr(_rs, "id_targets") else None
        if targets:
            # Ints that are the ids of objects saved only after them (numbers.rs): dumped again, knowing them.
            if _DEBUG:
                kinds = sorted({type(o).__qualname__ for o in targets.values()})
                print(f"capture: {len(targets)} ids of objects saved after them ({', '.join(kinds)}): dumped again",
                      file=sys.stderr)
            pk.clear_memo()
            cap.buffers.clear()
            buf = io.BytesIO()
            pk = (_profiled if _PROFILE else _Pickler)(buf, cap, targets)
            pk.dump(root)
    except NotResumable:
        raise
    except RecursionError:
        raise CheckpointError("the job's state is nested too deeply to pickle") from None
    except Exception as e:
        if _DEBUG:
            traceback.print_exc()
        why, holder = _explain_unpicklable(e, g, plans, cap)
        if _DEBUG:
            print(f"capture: cannot save: {why}", file=sys.stderr)
        if holder is not None and holder + 1 < n:
            raise _held_until_return(why, chain, holder + 1) from None
        raise CheckpointError(why) from None
    finally:
        sys.setrecursionlimit(limit)
        pk.clear_memo()  # the memo holds everything saved; not kept past the capture (see `_Filled`)
    _t3 = _perf()
    idents = [
        (p.module, p.code.co_qualname, p.code.co_firstlineno, code_hash(p.code)) for p in reversed(plans)
    ]
    if _DEBUG:
        print(f"capture: plans {(_t1-_t0)*1e3:.3f} extern {(_t2-_t1)*1e3:.3f} globals {(_t2b-_t2)*1e3:.3f} "
              f"module state {(_t2c-_t2b)*1e3:.3f} pickle {(_t3-_t2c)*1e3:.3f} idents {(_perf()-_t3)*1e3:.3f} ms; "
              f"{(time.thread_time()-_c0)*1e3:.3f} ms of CPU in {(_perf()-_t0)*1e3:.3f}", file=sys.stderr)
    baseline = _lower_bound(plans, g) if _BASELINE else None
    _t4 = _perf()
    libs = library_imports()
    if _DEBUG:
        print(f"capture: library imports {(_perf()-_t4)*1e3:.3f} ms; state {buf.tell()} bytes, "
              f"{len(cap.buffers)} buffers {sum(b.raw().nbytes for b in cap.buffers)} bytes", file=sys.stderr)
    # getvalue() hands over the BytesIO's own bytes object (no copy), which the worker keeps as it is.
    return buf.getvalue(), [b.raw() for b in cap.buffers], idents, libs, baseline


def _lower_bound(plans, g):
    """ML_BASELINE (benchmarks): how long `pickle.dumps` (protocol 5, in-band) takes on the job's live variables
    at this instant (every frame's locals and value stack, and the job module's globals), the lower bound of any
    checkpointer, measured on the same state as the capture; cloudpickle's where plain pickle cannot (the job's
    own functions; files as their names; a generator as nothing, its frame's variables being among the frames'),
    None where neither can. The worker leaves it out of the pause and capture times it reports."""
    import cloudpickle

    class _Files(cloudpickle.Pickler):  # cloudpickle refuses closed files (a `with open(...)` left at top level)
        def reducer_override(self, obj):
            if isinstance(obj, io.IOBase):
                return str, (str(getattr(obj, "name", "")),)
            if isinstance(obj, types.GeneratorType):  # its frame's variables are in `plans` already
                return type(None), ()
            return super().reducer_override(obj)

    def cloud(obj, protocol):
        out = io.BytesIO()
        _Files(out, protocol=protocol).dump(obj)
        return out.getvalue()

    # In-band, as `pickle.dumps` is called and as the engine's own benchmark measures it: a snapshot has to copy
    # the arrays' memory (the job goes on writing to it), which out-of-band buffers would only point to.
    live = ([p.values for p in plans], [p.stack for p in plans], g)
    for dumps in (pickle.dumps, cloud):
        t0, c0 = _perf(), time.thread_time()
        try:
            data = dumps(live, protocol=5)
        except Exception as e:
            if _DEBUG:
                print(f"capture: baseline: {dumps.__name__} cannot pickle the live variables: {e!r}", file=sys.stderr)
            continue
        took = _perf() - t0
        if _DEBUG:
            print(f"capture: baseline: {dumps.__name__} {took * 1e3:.3f} ms ({(time.thread_time() - c0) * 1e3:.3f} ms "
                  f"of CPU), {len(data)} bytes", file=sys.stderr)
        _keep_baseline(data)
        return took
    return None


def _keep_baseline(data):
    """ML_BASELINE naming a directory (benchmarks that measure the lower bound's size, `microlambda-bench paper`):
    the pickle just timed is written there, one file per capture, after the timing."""
    where = os.environ.get("ML_BASELINE", "")
    if data is not None and os.path.isdir(where):
        with open(os.path.join(where, f"{time.monotonic_ns()}.pickle"), "wb") as f:
            f.write(data)


_NP_DEFAULT_ERR = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


def _contexts(job=None, trial=None):
    """The job thread's current contexts that no object of the job holds, where the job changed them: the
    decimal context (precision, rounding, traps, flags; `decimal.getcontext().prec = 50` was lost on restore, and
    the job went on computing at 28 digits), numpy's floating-point error handling (`np.seterr`), and the context
    variables set since the job started that a module holds by name (others no code of the job can reach by
    name; C modules' own, like decimal's, are the cases above) and whose value `trial` can save. A `decimal.localcontext()` the job is inside is
    its current context, and stays the object its `with` holds. What the job changed of the process's state
    (`state.process_marks`): the standard streams it rebound (`contextlib.redirect_stdout(buf)`: its prints after
    a restore went to the process's stdout, not into `buf`), the environment variables it set or removed, the
    warnings filters and hooks (a `simplefilter("error")` was lost, and a `catch_warnings(record=True)` recorded
    nothing after a restore)."""
    out = {}
    if job is not None:
        start = job.context0
        named = {v: x for v, x in contextvars.copy_context().items()
                 if start.get(v, _UNSET) is not x and _named_var(v, job)}
        for v, x in list(named.items()):
            try:
                named[v] = portable_value(v, x)
                if trial is not None:
                    trial(named[v])
            except NotResumable:
                raise
            except Exception:  # a C extension's own state (a capsule) or a value that cannot be saved: left
                del named[v]  # out, rather than stopping every checkpoint of the job
        if named:
            out["vars"] = named
    logs = _logging_config(job, trial) if job is not None else None
    if logs:
        out["logging"] = logs
    dec = sys.modules.get("decimal")
    if dec is not None:
        c = dec.getcontext()
        if repr(c) != repr(dec.Context()):
            out["decimal"] = c
    np = sys.modules.get("numpy")
    if np is not None and hasattr(np, "geterr"):
        e = np.geterr()
        if e != _NP_DEFAULT_ERR:
            out["numpy_err"] = e
    limit = sys.getrecursionlimit()
    if limit != _RECURSION_LIMIT:  # sys.setrecursionlimit(5000) before a deep recursion
        out["recursion_limit"] = limit
    marks0 = getattr(job, "marks0", None)
    if marks0 is not None:
        # Not tried and left out like a context variable: output sent to the restoring process's own stream or
        # a warning filter lost would be a wrong resume, so what cannot be saved (a file open for writing)
        # refuses the capture.
        now = process_marks()
        moved = {n: s for n, s, s0 in zip(STREAMS, now["streams"], marks0["streams"]) if s is not s0}
        if moved:
            out["streams"] = moved
        env, env0 = now["environ"], marks0["environ"]
        if env != env0:
            out["environ"] = {k: v for k, v in env.items() if env0.get(k) != v}, [k for k in env0 if k not in env]
        if now["warnings"] != marks0["warnings"]:
            out["warnings"] = now["warnings"]
        settings = {}
        for name, values in now["settings"].items():
            # A registry imported while the job ran is compared with what importing it makes again on restore.
            was = marks0["settings"].get(name) or {}
            changed = {k: v for k, v in values.items() if k not in was or _differs(was[k], v)}
            if changed:
                settings[name] = changed
        if settings:
            out["settings"] = settings
        for key in ("cwd", "int_digits"):
            if now[key] != marks0[key] and now[key] is not None:
                out[key] = now[key]
    return out or None


def _differs(a, b):
    """Whether a setting changed: by value, where values compare (numpy arrays or lists of them do not)."""
    if a is b:
        return False
    try:
        return bool(a != b)
    except Exception:  # noqa: BLE001 - an ambiguous comparison: saved, which is always right
        return True


_RECURSION_LIMIT = sys.getrecursionlimit()  # the worker's, before any job
_PICKLE_DEPTH = 1000  # each level may be a C frame and a Python call: more could overflow the C stack


_UNSET = object()


def _named_var(var, job):
    """Whether a module holds the context variable by name (what the pickler saves it as)."""
    ref = _EXTERN.get(id(var))
    if ref is not None and extern_holds(ref, var):
        return True
    return any(v is var for v in list(job.module.__dict__.values()))


_FRESH_LOGGER = (0, (), True, False, ())  # a logger nobody configured


def _logging_config(job, trial):
    """The configuration of the loggers the job configured since it started (`logging.getLogger("job")
    .addHandler(h)`, a level set, `logging.basicConfig()` in `main`): the logging module's, kept by name, so the
    restoring process's loggers had none of it and the job's log lines after a restore went nowhere (or into a
    handler's saved copy that no logger called). A logger whose configuration cannot be saved (a handler on a
    socket) is left out, as before, rather than stopping every checkpoint of the job."""
    lg = sys.modules.get("logging")
    marks0 = getattr(job, "logging0", None)
    if lg is None or marks0 is None:
        return None
    out = {}
    for name, mark in logging_marks().items():
        if marks0.get(name, _FRESH_LOGGER) == mark:
            continue
        lgr = lg.root if name is None else lg.getLogger(name)
        conf = (lgr.level, list(lgr.handlers), lgr.propagate, lgr.disabled, list(lgr.filters))
        try:
            if trial is not None:
                trial(conf)
        except NotResumable:
            raise
        except Exception:  # noqa: BLE001 - as for context variables: left out
            continue
        out[name] = conf
    return out or None


def _set_contexts(ctx):
    if not ctx:
        return
    if "logging" in ctx:
        import logging

        for name, (level, handlers, propagate, disabled, filters) in ctx["logging"].items():
            lgr = logging.root if name is None else logging.getLogger(name)
            lgr.setLevel(level)  # clears the loggers' cached levels
            lgr.handlers, lgr.propagate, lgr.disabled, lgr.filters = handlers, propagate, disabled, filters
    for var, value in ctx.get("vars", {}).items():
        var.set(value)
    if "decimal" in ctx:
        import decimal

        decimal.setcontext(ctx["decimal"])
    if "numpy_err" in ctx:
        import numpy

        numpy.seterr(**ctx["numpy_err"])
    if "recursion_limit" in ctx:
        sys.setrecursionlimit(ctx["recursion_limit"])
    for name, stream in ctx.get("streams", {}).items():
        setattr(sys, name, stream)
    if "environ" in ctx:
        changed, gone = ctx["environ"]
        os.environ.update(changed)
        for k in gone:
            os.environ.pop(k, None)
    if "cwd" in ctx:
        try:
            os.chdir(ctx["cwd"])
        except OSError as e:  # relative paths would name other files: not resumed here
            raise RestoreError(f"the job's working directory {ctx['cwd']!r} is not here: {e}") from None
    if "int_digits" in ctx:
        sys.set_int_max_str_digits(ctx["int_digits"])
    for name, changed in ctx.get("settings", {}).items():
        SETTINGS[name][1](importlib.import_module(name), changed)
    if "warnings" in ctx:
        import warnings

        # A list of its own: a `catch_warnings` the job is inside holds the list to put back as it leaves.
        warnings.filters, warnings.defaultaction, warnings.showwarning, warnings._showwarnmsg_impl = ctx["warnings"]
        warnings._filters_mutated()


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


def _class_state(job, classes):
    """Data attributes of the job's own classes (a class-level counter, a registry): part of the module's
    mutable state. Methods and descriptors come back with the class when the module is loaded again."""
    out = {}
    enum = sys.modules.get("enum")
    for qn, c in classes.items():
        if enum is not None and isinstance(c, enum.EnumType):
            continue  # members are constants, re-created (and only looked up) when the module loads
        attrs = {k: v for k, v in vars(c).items()
                 if not (k.startswith("__") and k.endswith("__") and type(v) is not _LRU)  # `__call__ = lru_cache(f)`
                 and not isinstance(v, _CLASS_SKIP)
                 and (not hasattr(type(v), "__get__")  # descriptors (cached_property...) are the class's code
                      or type(v) is _LRU and any(v.cache_info()[:2]))  # a method's cache is data
                 and k != "_abc_impl"}  # an ABC's C-level data: its registrations are saved below
        registered = _abc_registered(c)
        if registered:
            attrs["_abc_impl"] = _AbcRegistered(registered)
        if attrs:
            out[qn] = attrs
    return out


def _abc_registered(c):
    """The classes registered as virtual subclasses of `c`, an ABC of the job's (`Base.register(Plain)`): the
    module run again on restore makes the ABC with an empty registry, and `isinstance(Plain(), Base)` turned
    False after the restore. Classes registered by the module's top level are registered again by it anyway."""
    if "_abc_impl" not in vars(c):
        return ()
    try:
        import _abc

        refs = _abc._get_dump(c)[0]
    except Exception:
        return ()
    live = (r() for r in refs)
    return tuple(sorted((k for k in live if k is not None), key=lambda k: (k.__module__, k.__qualname__)))

def _member_state(job, classes):
    """Attributes set on the members of the job's own Enum classes (`Level.LOW.hits += 1`): the members are the
    module's, made again when it loads and looked up by value, so what the job set on them is state. Names that
    start with an underscore are the Enum machinery's."""
    enum = sys.modules.get("enum")
    if enum is None:
        return None
    out = {}
    for qn, c in classes.items():
        if not isinstance(c, enum.EnumType):
            continue
        for name, member in c.__members__.items():
            attrs = {k: v for k, v in getattr(member, "__dict__", {}).items()
                     if not k.startswith("_") and (type(v) in _SCALAR or _keeps((v,), job))}
            if attrs:
                out.setdefault(qn, {})[name] = attrs
    return out or None


_SCALAR = (int, float, complex, str, bytes, bool, type(None))
_DATA = (list, dict, set, bytearray, frozenset) + _SCALAR


def _keeps(values, job):
    """Whether some of the values a job function holds are the job's data, which the module run again would make
    afresh: containers, bare sentinels (`object()`), instances of the job's own classes (not scalars, which it
    makes equal). What decorators attach (singledispatch's registry and dispatch functions, weak caches) is made
    again by the module itself."""
    for v in values:
        t = type(v)
        if t is tuple and _keeps(v, job) or \
                t not in _SCALAR and (t in _DATA or t is object or t.__module__ == job.name):
            return True
    return False


def _job_functions(job, classes=None):
    """Functions the job's module defines at top level and in its classes, by qualified name."""
    out = {k: v for k, v in list(job.module.__dict__.items())
           if type(v) is types.FunctionType and v.__module__ == job.name and v.__qualname__ == k}
    for qn, c in (_job_classes(job) if classes is None else classes).items():
        for k, v in list(vars(c).items()):
            v = v.__func__ if isinstance(v, staticmethod) else v
            if type(v) is types.FunctionType and v.__qualname__ == f"{qn}.{k}":
                out[v.__qualname__] = v
    return out


def _job_cells(job, funcs):
    """The closure cells of the job module's functions and of the functions their cells hold (a decorator's
    wrapper holding the function that holds the state), by identity: each is saved as that cell, which the
    module makes again on restore (`pickler._job_cell`)."""
    out = {}
    for qn, f in funcs.items():
        for path, c in _closure_cells(f, (), set()):
            out.setdefault(id(c), (job.name, qn, path))
    return out


def _closure_cells(f, path, seen, depth=3):
    """(path, cell) for the closure of `f` and, `depth` levels down, of the plain functions its cells hold."""
    if id(f) in seen:
        return
    seen.add(id(f))
    for i, c in enumerate(f.__closure__ or ()):
        yield path + (i,), c
        try:
            v = c.cell_contents
        except ValueError:
            continue
        if type(v) is types.FunctionType and depth > 1:
            yield from _closure_cells(v, path + (i,), seen, depth - 1)


def _function_state(job, funcs=None, classes=None):
    """What the job's own functions hold that the module, run again on restore, would make afresh: default
    values that are objects, not constants (`def add(x, seen=[])` accumulating; a sentinel `_MISSING = object()`,
    which the module's globals bring back as the saved object, so the default must be that object too; a
    constant that is the very object a global or a class attribute holds, `MISSING = "<missing>"` compared with
    `is`, for the same reason), attributes set on them (`f.calls += 1`), and what their closure cells hold by
    the same rule (a decorator's `nonlocal` counter; the registry of a singledispatch function, which `register`
    fills at run time): the cells themselves, saved as the module's own cells with their contents."""
    out = {}
    shared = _saved_constants(job, classes)
    for qn, f in (_job_functions(job) if funcs is None else funcs).items():
        d, kw = f.__defaults__, f.__kwdefaults__
        attrs = {k: v for k, v in f.__dict__.items()
                 if not (k.startswith("__") and k.endswith("__")) and (type(v) in _SCALAR or _keeps((v,), job))}
        keep_d = bool(d) and (_keeps(d, job) or any(id(v) in shared for v in d))
        keep_kw = bool(kw) and (_keeps(kw.values(), job) or any(id(v) in shared for v in kw.values()))
        cells = tuple(c for _, c in _closure_cells(f, (), set()) if _cell_keeps(c, job))
        if keep_d or keep_kw or attrs or cells:
            out[qn] = (d if keep_d else ..., kw if keep_kw else ..., attrs, cells)
    return out or None


# Immutable values whose identity a load does not keep by itself (pickle writes them by value; small ints, True,
# False and None are the interpreter's own).
_BY_VALUE = (str, bytes, int, float, complex, tuple, frozenset)


def _saved_constants(job, classes):
    """The ids of the immutable values the checkpoint saves as the job module's globals and its classes' data
    (`_class_state`): these come back as the saved objects, not as the ones the module run again makes, so a
    function default that is one of them (`def get(k, default=MISSING)` with `MISSING = "<missing>"`, tested
    with `is`) must be saved too, to stay that same object."""
    values = list(job.module.__dict__.values())
    for attrs in (classes or {}).values():
        values.extend(attrs.values())
    out = set()
    for v in values:
        t = type(v)
        if t in _BY_VALUE and not (t is int and -5 <= v <= 256) and not (t in _SIZED and not v):
            out.add(id(v))
    return out


_SIZED = (str, bytes, tuple, frozenset)  # an empty one of these may be the interpreter's own


def _cell_keeps(cell, job):
    try:
        v = cell.cell_contents
    except ValueError:
        return False
    return type(v) in _SCALAR or _keeps((v,), job)


def _np_state_eq(a, b):
    try:
        return a[0] == b[0] and a[2:] == b[2:] and bytes(memoryview(a[1])) == bytes(memoryview(b[1]))
    except Exception:
        return False


def _held_until_return(why, chain, i):
    """The wait for frame `i`'s call to return: the frame it called holds what cannot be saved (matplotlib's
    text layout holds a FreeType font for the length of one call). Trying every 1-16 ms instead pickled the
    whole state again each time, and the job ran at a twenty-fifth of its speed."""
    return _wait_for_return(HeldUntilReturn(why), chain, i) or CheckpointError(why)


def _explain_unpicklable(err, g, plans, cap):
    """Find which variable holds what cannot be pickled, for a message that names it, and the index in the
    chain of the frame that holds it, or None for a global. One pickler tries every variable, so its memo
    saves each object once in all (a variable per pickler pickled the whole figure of a matplotlib job again
    for every local of every frame: 0.7 s). Frames are tried innermost first: the first that fails holds it
    most directly, and is the one to wait for (an outer frame that also holds it is found by the next try)."""
    pk = _Pickler(io.BytesIO(), cap)

    def fails(v):
        try:
            pk.dump(v)
            return None
        except Exception as e:
            return e

    why = f"{type(err).__name__}: {err}"
    for k, v in g.items():
        e = fails(v)
        if e is not None:
            return f"global {k!r} of module {cap.job.name} holds a {_tname(v)} that cannot be saved ({e})", None
    for i, p in enumerate(plans):
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
                return f"local variable {name!r} in {where} holds a {_tname(v)} that cannot be saved ({e})", i
        for j, v in enumerate(p.stack):
            if v is NULL:
                continue
            e = fails(v)
            if e is not None:
                return f"a value on the stack of {where} (slot {j}) is a {_tname(v)} that cannot be saved ({e})", i
    return f"the job's state cannot be saved: {why}", None


def _tname(v):
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
