"""Lists, dicts and sets that library modules bind and fill at run time, held by the job across checkpoints:
`sys.modules` (filled by every import), `sys.path`, `copyreg.dispatch_table`, `os.supports_fd`; held in a global, in
locals, in a dict of the job's, and passed down as an argument to a frame that imports a module. After a restore
each is the restoring process's own object, never a copy of what it held at the checkpoint: a module imported after
the restore is in the `mods` the frame was given before it, and a `for` loop over a library's list or dict goes on
from where it was. (Pillow's `Image.open` holds `PIL.Image.ID` so while its plugins load and register there:
`tests/corpus_libs/29_pil_open_streams.py`.)"""
import copyreg
import importlib
import keyword
import os
import sys

DISPATCH = copyreg.dispatch_table
NAMES = ["colorsys", "graphlib", "quopri", "filecmp", "getopt", "sched", "netrc", "stringprep", "tabnanny",
         "pyclbr", "cmd", "codeop"]


def work(i, n):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def load(name, mods, n):
    s = work(len(name), n)
    importlib.import_module(name)
    return s, name in mods


def main(inp):
    held = {"modules": sys.modules, "path": sys.path, "dispatch": copyreg.dispatch_table, "fd": os.supports_fd}
    out = []
    for name in NAMES * inp["rounds"]:
        mods = sys.modules
        s, seen = load(name, mods, inp["n"])
        out.append([name, s, seen, mods is sys.modules, held["modules"] is sys.modules, held["path"] is sys.path,
                    held["dispatch"] is copyreg.dispatch_table, held["fd"] is os.supports_fd,
                    DISPATCH is copyreg.dispatch_table])
    # A `for` loop over a library's list: its iterator, saved with the list by reference, goes on where it was.
    words = []
    for kw in keyword.kwlist:
        words.append([kw, work(len(kw), inp["n"] // 10)])
    # And over a library's dict (which registrations it holds depends on the process: only that each is callable).
    reducers = []
    for cls, reducer in copyreg.dispatch_table.items():
        reducers.append(callable(reducer) and work(len(cls.__name__), inp["n"] // 10) >= 0)
    return [len(out), out[:2], [o for o in out if not all(o[2:])][:3], len(words), words[::7], all(reducers)]
