"""Restore: unpickle a checkpoint, put the job module's state back, and rebuild the frames innermost first as
morphs, each re-entering the next. Returns the outermost morph for the worker to call.
"""

import contextvars
import random
import sys

from . import identity, state
from .analysis import code_info
from .base import _DEBUG, RestoreError, _perf, _rs, modules_since
from .capture import _set_contexts
from .morph import K_GEN_RUNNING, _closure_of, _morph_function, _Morph, _shift_marks, _template
from .pickler import _SHELLS, _AbcRegistered, _bind_globals, _index_externs, expect_input, load, restore_input_done, take_module_locks
from .refs import settle_context_vars
from .state import logging_marks, process_marks


def _resolve_qualname(mod, qualname):
    o = mod
    for part in qualname.split("."):
        o = getattr(o, part, None)
        if o is None:
            return None
    return o


def _set_function_state(mod, saved):
    """Give the job module's functions, made again by loading it, the defaults and attributes they had."""
    # The closure cells saved beside them (a fourth item) were filled as they were unpickled.
    for qualname, (defaults, kwdefaults, attrs, *_) in (saved or {}).items():
        f = _resolve_qualname(mod, qualname)
        if f is None:
            raise RestoreError(f"function {qualname} of the job's module no longer exists")
        if defaults is not ...:  # ...: as the module makes them
            f.__defaults__ = defaults
        if kwdefaults is not ...:
            f.__kwdefaults__ = kwdefaults
        f.__dict__.update(attrs)


def _set_class_state(mod, classes):
    """Give the job module's classes, made again by loading it, the data they held, and register again the
    virtual subclasses registered with its ABCs at run time."""
    for qualname, attrs in classes.items():
        cls = _resolve_qualname(mod, qualname)
        if cls is None:
            raise RestoreError(f"class {qualname} of the job's module no longer exists")
        for k, v in attrs.items():
            if type(v) is _AbcRegistered:
                for sub in v.classes:
                    cls.register(sub)
                continue
            setattr(cls, k, v)


def _set_member_state(mod, saved):
    """Give the members of the job module's Enum classes, made again by loading it, the attributes set on them."""
    for qualname, members in (saved or {}).items():
        cls = _resolve_qualname(mod, qualname)
        if cls is None:
            raise RestoreError(f"class {qualname} of the job's module no longer exists")
        for name, attrs in members.items():
            member = cls.__members__.get(name)
            if member is None:
                raise RestoreError(f"{qualname}.{name} of the job's module no longer exists")
            for k, v in attrs.items():
                setattr(member, k, v)


def restored_imports():
    """The modules imported in this process since it was warmed (the job's module loading them, then the
    restore), in the order they were imported, not the job's nor the runtime's: what a restore here lacked.
    The node has a zygote for the checkpoint's library packages import them too, so that a restore forked from
    it imports nothing (a package's top-level import does not bring in the submodules a job used, e.g.
    ``sklearn.neighbors``)."""
    warm = state.WARM_MODULES
    new = modules_since(warm)
    if new is None:
        new = [m for m in list(sys.modules) if m not in warm]
    return [
        m for m in new if m not in state._JOB_MODULES and m != "__main__"
        and not m.startswith("microlambda_rt") and getattr(sys.modules.get(m), "__spec__", None) is not None
    ]


def indexed_modules():
    """The library modules whose code index this process has built (the restore looked code up in them): a
    zygote for the checkpoint's module set builds them before it forks."""
    return [n for n, (m, _, _) in identity._MODULE_INDEX.items()
            if sys.modules.get(n) is m and n not in state._JOB_MODULES and not n.startswith("microlambda_rt")]


def restore(data, buffers, input_json=None):
    """Rebuild the checkpointed job (`input_json`: the job's input, for a checkpoint that saved parts of it by
    reference). Returns (callable that continues the job, the handled exception)."""
    expect_input(input_json)
    try:
        return _restore(data, buffers)
    except Exception:
        if _DEBUG:  # the worker reports the message only
            import traceback

            traceback.print_exc()
        raise
    finally:
        restore_input_done()


def _restore(data, buffers):
    _t0 = _perf()
    _index_externs()  # the libraries as imported, before the checkpoint binds anything into them
    _ti = _perf()
    baseline = state.ModuleMark()
    context0 = contextvars.copy_context()  # this process's, before the checkpoint's variables are set
    logging0 = logging_marks()  # and its loggers, before the checkpoint's configuration is applied
    marks0 = process_marks()  # and its streams, environment and warnings, before the job's are set
    try:
        root = load(data, buffers)
        _tl = _perf()
    finally:
        settle_context_vars()  # the variables restored tokens refer to, as they were at the checkpoint
    if type(root[0]) is str:  # made before checkpoints listed the modules imported while the job ran
        root = (None,) + tuple(root)
    imports, name, g, classes, rng, nprng, thread_exc, plans, *rest = root
    for mname, names in (rest[0] if rest else {}).items():
        _bind_globals(mname, names)
    _set_contexts(rest[1] if len(rest) > 1 else None)  # absent from checkpoints made before they were saved
    if _DEBUG:
        print(f"restore: unpickle {(_perf() - _t0) * 1e3:.3f} ms (index {(_ti - _t0) * 1e3:.3f}, load "
              f"{(_tl - _ti) * 1e3:.3f}, globals and contexts {(_perf() - _tl) * 1e3:.3f})", file=sys.stderr)
    mod = sys.modules.get(name)
    if mod is None:
        raise RestoreError(f"the job module {name!r} is not loaded")
    _ta = _perf()
    mod.__dict__.update(g)
    _set_class_state(mod, classes)
    _set_function_state(mod, rest[2] if len(rest) > 2 else None)
    take_module_locks(rest[3] if len(rest) > 3 else ())
    _set_member_state(mod, rest[4] if len(rest) > 4 else None)
    job = state.JOB if state.JOB is not None and state.JOB.module is mod else state._Job(mod)
    job.baseline = baseline
    # What the job imported while it ran stays its own though this process had it before the restore (a zygote
    # taught it): its next checkpoint names it too, for a node whose zygotes lack it.
    job.carried = tuple(imports) if type(imports) is list else ()
    job.context0 = context0  # a variable the checkpoint set counts as the job's own at the next checkpoint
    job.logging0 = logging0  # and so does a logger it configured
    job.marks0 = marks0  # and a stream it rebound, a variable of the environment, a warnings filter
    if _DEBUG:
        print(f"restore: job {(_perf() - _ta) * 1e3:.3f} ms", file=sys.stderr)
    if rng is not None:
        random.setstate(rng)
        job.rng_owned = True
    if nprng is not None:
        import numpy.random as npr

        npr.set_state(nprng)
        job.nprng_owned = True
    state.JOB = job
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
            m = _SHELLS.pop(id(gen))[1]
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
