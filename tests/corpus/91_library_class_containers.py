"""Objects a library owns below its module's namespace, held by the job (or by a library frame) across
checkpoints: a class's own list or dict (`SimpleHTTPRequestHandler.extensions_map`, a server's table of types; an
`Enum` flag class's `_value2member_map_`, where `Flag` caches each combined member it makes); a list or dict of an
instance a module or a class holds (`logging.root.handlers`; `logging.Logger.manager.loggerDict`, which every
`getLogger` fills); a library function's default value (`copy.deepcopy`'s `_nil`, the sentinel list it compares
with `is`, held by its frame while it calls the job's `__deepcopy__`); and the other objects a class holds, which
it compares with `is` (`MutableMapping`'s `__marker`) or which keep its state (`logging.Logger.manager`). After a
restore each is the restoring process's own object, so what the library puts there after the restore is seen
through the job's variable, and a frame's default is its function's. They came back as copies of what they held
at the checkpoint: the combined flag made after the restore was missing from `members`, a new logger from
`loggers`. (What the job itself puts in a library's container is the library's state, not carried, as for a
module's registry: docs/CHECKPOINTS.md.)"""
import collections.abc
import copy
import http.server
import logging
import re
import sys

Handler = http.server.SimpleHTTPRequestHandler


def work(i, n):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


class Stamp:
    """A value whose deep copy does work, and reports whether the `deepcopy` frame that called it holds its
    function's own `_nil` default."""

    def __init__(self, i, n):
        self.i, self.n = i, n

    def __deepcopy__(self, memo):
        s = work(self.i, self.n)
        caller = sys._getframe(1)
        own = caller.f_code.co_name == "deepcopy" and caller.f_locals["_nil"] is copy.deepcopy.__defaults__[1]
        return [self.i, s, own]


def main(inp):
    types = Handler.extensions_map
    members = re.RegexFlag._value2member_map_
    loggers, handlers = logging.Logger.manager.loggerDict, logging.root.handlers
    Mapping = collections.abc.MutableMapping
    manager, marker = logging.Logger.manager, Mapping._MutableMapping__marker
    out = []
    flags = [re.I, re.M, re.S, re.X, re.A, re.L, re.U]
    for i in range(inp["rounds"]):
        s = work(i, inp["n"])
        combined = flags[i % 7] | flags[(i + 2) % 7] | flags[(i + 4) % 7]  # made here, cached in the class's dict
        out.append([i, s, ".gz" in types, types is Handler.extensions_map,
                    combined.value in members and members[combined.value] is combined,
                    members is re.RegexFlag._value2member_map_,
                    logging.getLogger(f"ml.{i}") is loggers.get(f"ml.{i}"), handlers is logging.root.handlers,
                    manager is logging.Logger.manager, marker is Mapping._MutableMapping__marker])
    copies = copy.deepcopy([Stamp(i, inp["n"]) for i in range(inp["rounds"])])
    return [len(out), out[:2], [o for o in out if not all(o[2:])][:3], copies[:2], [c for c in copies if not c[2]][:3]]
