"""Run a session workload in plain CPython, with no mesh: the reference its replies on the mesh must match.

Usage: python examples/paper/local.py FILE.py ENTRY OPENING_JSON REQUESTS_JSON
Prints one JSON line per reply: the opening's (request 0), then one per request, as the session's `reply` events
carry them. A generator function is driven with send(); a class is called with the opening input, then its
handle(request) with each request (docs/PROTOCOL.md, "Sessions")."""
import importlib.util
import inspect
import json
import sys


def replies(path, entry, opening, requests):
    spec = importlib.util.spec_from_file_location("paper_job", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    f = getattr(mod, entry)
    if inspect.isgeneratorfunction(f):
        gen = f(opening)
        yield next(gen)
        for req in requests:
            yield gen.send(req)
    else:
        obj = f(opening)
        yield None
        for req in requests:
            yield obj.handle(req)


if __name__ == "__main__":
    path, entry, opening, requests = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    for reply in replies(path, entry, opening, requests):
        print(json.dumps(reply, allow_nan=False), flush=True)
