"""What every other module of the runtime shares: the NULL stack marker, the three exceptions the worker
tells apart, the Rust helper module ``_mlrs`` and the ``ML_DEBUG`` switch.

It imports nothing from the package, so any module can import it.
"""

import os
import sys
from time import perf_counter as _perf  # noqa: F401 - re-exported: the timings printed under ML_DEBUG

if sys.version_info[:2] != (3, 11):  # pragma: no cover - the worker refuses earlier
    raise ImportError("microlambda_rt supports CPython 3.11 only, not " + sys.version)

_rs = sys.modules["_mlrs"]  # the Rust helpers (RawFrame, generator access), registered by the worker
_DEBUG = bool(os.environ.get("ML_DEBUG"))  # print where capture and restore time goes
_PROFILE = bool(os.environ.get("ML_PROFILE"))  # print a cProfile of each capture's pickling
_BASELINE = bool(os.environ.get("ML_BASELINE"))  # also time pickle.dumps of the live variables (benchmarks)


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


class WaitForReturn(NotResumable):
    """A frame is in a call into C that may call Python but cannot be resumed mid-way (``sorted(key=)``, ``map``,
    ``sum(gen)``): nothing is resumable until that call returns. ``index`` is the frame's place in the chain and
    ``units`` the code units where it goes on after a normal return (set by the capture), so the trigger can
    wait for exactly that instant untraced."""

    index = None
    units = ()
    breakpoint = 0


class HeldUntilReturn(WaitForReturn):
    """State that cannot be saved is held by the frame after ``index`` (a local, or a value on its stack): no
    instant is resumable before that frame returns. Reported as unpicklable when the deadline comes first."""


class CheckpointError(Exception):
    """The state cannot be checkpointed (the message names what and where)."""


class RestoreError(Exception):
    """A checkpoint cannot be restored here (changed code, missing module...)."""


def modules_since(mark):
    """The names sys.modules gained since `mark` (a set of its names then, or a ``state.ModuleMark``), in import
    order; None when that cannot be told from its end (a name of `mark` left it, or moved: the caller walks it
    all). New names are added at the end (dicts keep insertion order), so only they are touched: a walk of
    every name in a fresh child of a zygote copies the pages of them all (~3-4 ms, and ~6-8 ms with the module
    objects, with pandas and scikit-learn imported: docs/BENCHMARKS.md) where the zygote's walk cost 0.1 ms.
    No mark (None) tells nothing: None."""
    if mark is None:
        return None
    new = []
    try:
        for name in reversed(sys.modules):
            if name in mark:
                break
            new.append(name)
    except RuntimeError:  # another thread imported meanwhile
        return None
    if len(sys.modules) - len(new) != len(mark):
        return None
    new.reverse()
    return new


def module_items(new):
    """(name, module) for the names `new` (an answer of ``modules_since``), or for every module when it is None."""
    return list(sys.modules.items()) if new is None else [(k, sys.modules.get(k)) for k in new]
