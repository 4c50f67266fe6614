"""The process's environment and warnings machinery changed by the job: variables set and removed in
`os.environ` that later code reads, `warnings.simplefilter("error")` turning a warning into an exception the job
catches, and `warnings.catch_warnings(record=True)` recording what a loop warns. Both belong to the process, not
to an object of the job: after a restore the variables read as missing, the warning was printed instead of
raised, and the recording list stopped growing."""
import os
import warnings


class DriftWarning(UserWarning):
    pass


def work(i):
    h = i
    for _ in range(40):
        h = (h ^ (h << 3)) & 0xFFFFF
        h = (h + 0x9E37) % 999983
    return h


def check(v, i):
    if v % 7 == 0:
        warnings.warn(f"drift at {i}", DriftWarning)
    return v


def main(inp):
    n = inp["n"]
    os.environ["ML_CORPUS_MODE"] = "fast"
    os.environ.pop("ML_CORPUS_UNSET", None)
    modes, raised = [], 0
    warnings.simplefilter("error", DriftWarning)
    for i in range(n):
        try:
            check(work(i), i)
        except DriftWarning:
            raised += 1
        if i % 97 == 0:
            modes.append(os.environ.get("ML_CORPUS_MODE", "missing"))
    warnings.simplefilter("default", DriftWarning)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for i in range(n):
            check(work(i), i)
    del os.environ["ML_CORPUS_MODE"]
    return {"raised": raised, "modes": sorted(set(modes)), "recorded": len(rec), "last": str(rec[-1].message),
            "after": os.environ.get("ML_CORPUS_MODE", "unset")}
