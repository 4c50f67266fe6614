"""The job this worker runs: the one piece of per-job state (``JOB``, the names of modules loaded from job
source) that loading, capture and restore share. Other modules read and set it as ``state.JOB``.
"""

import contextvars
import os
import random
import sys

from .base import modules_since


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
        # Modules loaded before the job ran (its own imports included): a module imported later, while the job
        # ran (PIL loads its image plugins on first use, and they register themselves in PIL's tables), is
        # imported again on restore before the job's state is rebuilt.
        self.baseline = ModuleMark()
        self.carried = ()  # a restored job's: what the checkpoint said it had imported while it ran
        self.context0 = contextvars.copy_context()  # the context variables' values as the job starts
        self.logging0 = logging_marks()  # the loggers' configuration as the job starts
        self.marks0 = process_marks()  # the process's state the job may change, as the job starts


STREAMS = ("stdin", "stdout", "stderr")


def process_marks():
    """What a job may change of the process's own state, which no object of the job holds and a restoring
    process has as it started: the objects `sys.stdin`, `sys.stdout` and `sys.stderr` are
    (`contextlib.redirect_stdout`), the environment (`os.environ[...] = ...`), the warnings machinery's
    filters, default action and hooks (`warnings.simplefilter`, `warnings.catch_warnings(record=True)`), and
    libraries' settings registries (`SETTINGS`), the working directory (`os.chdir`) and the longest int
    `str()` converts (`sys.set_int_max_str_digits`). Taken
    as the job starts (and as a restore begins) to tell what the job changed (`capture._contexts`)."""
    return {"streams": tuple(getattr(sys, name, None) for name in STREAMS), "environ": dict(os.environ),
            "warnings": warnings_mark(), "settings": library_settings(), "cwd": _cwd(),
            "int_digits": sys.get_int_max_str_digits()}


def _cwd():
    try:
        return os.getcwd()
    except OSError:  # removed while the process was in it
        return None


def _pandas_options(cfg):
    out = {}
    todo = [("", cfg._global_config)]
    while todo:
        prefix, d = todo.pop()
        for k, v in d.items():
            if type(v) is dict:
                todo.append((f"{prefix}{k}.", v))
            else:
                out[prefix + k] = v
    return out


def _set_pandas_options(cfg, changed):
    for k, v in changed.items():
        cfg.set_option(k, v)


def _rc_params(mpl):
    rc = mpl.rcParams
    return {k: dict.__getitem__(rc, k) for k in dict.keys(rc)}  # raw: reading "backend" may switch backends


def _set_rc_params(mpl, changed):
    for k, v in changed.items():
        dict.__setitem__(mpl.rcParams, k, v)  # values it validated as the job set them


# Libraries' process-wide settings registries, by the module that holds them: how to read every setting (a flat
# mapping) and how to set some. The process's, not the job's: `pd.set_option("display.precision", 2)` and
# `plt.rcParams[...] = ...` were lost on restore, and the job's tables and figures came out with the defaults.
SETTINGS = {
    "pandas._config.config": (_pandas_options, _set_pandas_options),
    "matplotlib": (_rc_params, _set_rc_params),
    # scikit-learn's (`set_config(transform_output="pandas")`: transformers returned arrays after a restore).
    "sklearn._config": (lambda m: m.get_config(), lambda m, changed: m.set_config(**changed)),
}


def library_settings():
    """Per settings registry imported (`SETTINGS`), its settings now."""
    return {name: read(sys.modules[name]) for name, (read, _) in SETTINGS.items() if name in sys.modules}


def warnings_mark():
    w = sys.modules["warnings"]  # imported by the interpreter at start-up
    return list(w.filters), w.defaultaction, w.showwarning, w._showwarnmsg_impl


def logging_marks():
    """Per logger (by name; None: the root), what its configuration is made of, by identity: level, handlers,
    propagation, disabled, filters. Taken as the job starts (`_Job.logging0`) to tell what the job changed."""
    lg = sys.modules.get("logging")
    if lg is None:
        return {}
    out = {None: _logger_mark(lg.root)}
    for name, lgr in list(lg.Logger.manager.loggerDict.items()):
        if isinstance(lgr, lg.Logger):  # not a PlaceHolder
            out[name] = _logger_mark(lgr)
    return out


def _logger_mark(lgr):
    return lgr.level, tuple(map(id, lgr.handlers)), lgr.propagate, lgr.disabled, tuple(map(id, lgr.filters))


JOB = None  # the _Job being run, set by job.start and restore.restore, cleared by job.finish


def _static_names(mod):
    names = mod.__dict__.get("__microlambda_static__", ())
    return set(names) if isinstance(names, (list, tuple, set, frozenset)) else set()


_JOB_MODULES = set()  # names of modules loaded from job source (never indexed as library state)
TOP_RNG = (False, False)  # whether the job module's top level changed random's / numpy's global RNG state
PRELOADED = None  # in a module zygote and its children: (name, filename, source) of the module it executed
WARM_MODULES = frozenset()  # sys.modules when the worker (or the zygote it is forked from) was warmed, before any job


class ModuleMark:
    """The names in sys.modules now, taken without touching each (see ``base.modules_since``): those the worker
    had when warmed (``WARM_MODULES``, made in the zygote and shared) and the few added since. A set for
    ``in`` and ``len``."""

    __slots__ = ("warm", "more")

    def __init__(self):
        more = modules_since(WARM_MODULES)
        if more is None:  # a warm name left or moved: all of them, touched
            self.warm, self.more = frozenset(sys.modules), frozenset()
        else:
            self.warm, self.more = WARM_MODULES, frozenset(more)

    def __contains__(self, name):
        return name in self.more or name in self.warm

    def __len__(self):
        return len(self.warm) + len(self.more)

    def forget(self, name):
        """`name` left sys.modules for good (a worker's own warm-up module): not counted as marked any more."""
        if name in self.more:
            self.more = self.more - {name}
