"""Code objects to test on: every function of a few stdlib modules (real compiler output, handlers, loops,
comprehensions, long lines), and a job-like module registered the way ``job.load_module`` registers one."""

import inspect
import sys
import types


def nested_codes(code):
    out = [code]
    for k in code.co_consts:
        if type(k) is types.CodeType:
            out += nested_codes(k)
    return out


def stdlib_codes():
    import dis
    import json.decoder
    import textwrap

    out = []
    for mod in (dis, json.decoder, textwrap):
        out += nested_codes(compile(inspect.getsource(mod), mod.__file__, "exec"))
    return out


def first_code(source, name):
    code = compile(source, "<test>", "exec")
    return next(c for c in nested_codes(code) if c.co_name == name)


def units_of(code, opname):
    """Code units (offset // 2) of every instruction named `opname`."""
    import dis

    return [i.offset // 2 for i in dis.get_instructions(code) if i.opname == opname]


def fake_module(name, source, filename=None):
    """A module compiled from `source` and registered in sys.modules, as the worker loads a job's module."""
    from microlambda_rt.identity import _note_job_module

    filename = filename or f"/jobs/{name}.py"
    mod = types.ModuleType(name)
    mod.__file__ = filename
    sys.modules[name] = mod
    _note_job_module(name, filename)
    exec(compile(source, filename, "exec"), mod.__dict__)
    return mod
