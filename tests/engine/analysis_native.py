"""Compares the runtime's code analysis in Rust (`_mlrs.code_flow`) with its Python walk, on every code object of
a broad set of standard library modules (their sources compiled, so nested functions, classes, comprehensions,
try/except/finally, with blocks and generators are all there): instruction boundaries, stack depths and lasti
marks, and that each raises where the other does."""
import importlib
import inspect
import time
import types

from microlambda_rt import analysis

MODULES = ["argparse", "asyncio.base_events", "asyncio.tasks", "collections", "contextlib", "dataclasses",
           "difflib", "dis", "email.message", "enum", "fractions", "functools", "http.client", "inspect",
           "json.decoder", "logging", "pickle", "_pydecimal", "re._parser", "shutil", "tarfile", "textwrap",
           "threading", "traceback", "typing", "unittest.case", "urllib.parse", "xml.etree.ElementTree",
           "zipfile"]


def nested(code):
    out = [code]
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out += nested(c)
    return out


def view(info):
    try:
        flow = (list(info._depth), list(info._marks)) if info._depth is not None else None
        if flow is None:
            info._analyze()
            flow = (list(info._depth), list(info._marks))
    except Exception as e:  # noqa: BLE001 - compared: both walks must refuse the same code
        flow = type(e).__name__
    ops = [(i.start, i.opu, i.op, i.arg, i.end) for i in info.ops]
    return list(info.owner), ops, flow, [info.instr(u).start for u in range(len(info.owner))]


def main(inp):
    native = analysis._NATIVE[0]
    if native is None:
        return {"error": "no native analysis in this worker"}
    codes = []
    for name in MODULES:
        mod = importlib.import_module(name)
        codes += nested(compile(inspect.getsource(mod), mod.__file__, "exec"))
    differ = []
    marked = 0
    for code in codes:
        try:
            fast = view(analysis.CodeInfo(code))
            analysis._NATIVE[0] = None
            slow = view(analysis.CodeInfo(code))
        finally:
            analysis._NATIVE[0] = native
        if fast != slow:
            differ.append(f"{code.co_filename}:{code.co_firstlineno} {code.co_qualname}")
        if isinstance(slow[2], tuple):
            marked += sum(1 for m in slow[2][1] if m)
    took = {}
    for label, walk in (("native_ms", native), ("python_ms", None)):
        analysis._NATIVE[0] = walk
        t0 = time.perf_counter()
        for code in codes:
            info = analysis.CodeInfo(code)
            info.depth_before(0)
        took[label] = round((time.perf_counter() - t0) * 1e3, 1)
    analysis._NATIVE[0] = native
    return {"codes": len(codes), "marked": marked, "differ": differ[:5], "n_differ": len(differ), **took}
