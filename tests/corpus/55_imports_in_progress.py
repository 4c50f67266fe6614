"""A job that asks the import system, as library code does to find optional dependencies: `find_spec` for
modules that may be missing (it holds the interpreter's import lock while it searches sys.path) and
`import_module` of modules already imported or not (it holds the module's lock). No instant inside an import
can be resumed: its locks belong to the process that took them."""
import importlib
import importlib.util

NAMES = ["json", "csv", "not_a_module_a", "decimal", "not_a_module_b", "fractions", "statistics", "no_such_pkg.sub"]


def probe(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def main(inp):
    found = {}
    loaded = 0
    for i in range(inp["n"]):
        name = NAMES[i % len(NAMES)]
        if i % 3 == 0:
            name = f"missing_module_{i % 97}"
        found[name] = found.get(name, 0) + probe(name)
        if i % 5 == 0 and not name.startswith(("missing", "not_a", "no_such")):
            loaded += len(importlib.import_module(name).__name__)
    return [sorted(found.items()), loaded]
