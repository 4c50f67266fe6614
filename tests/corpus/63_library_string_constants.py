"""Strings that library modules bind as globals and compare with `is`: argparse.SUPPRESS (a parser held across
checkpoints keeps it in its actions; namespaces must not grow `help='==SUPPRESS=='`), and the job's own copies
of such a constant, held in its data, still `is` the module's after a restore."""
import argparse


def work(i, n=150):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def make_parser():
    p = argparse.ArgumentParser(prog="tool", add_help=False, argument_default=argparse.SUPPRESS)
    p.add_argument("--x", type=int)
    p.add_argument("--name", default="anon")
    p.add_argument("--flag", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*")
    return p


def main(inp):
    p = make_parser()
    held = {"marker": argparse.SUPPRESS, "list": [argparse.SUPPRESS] * 3}
    out = []
    for i in range(inp["n"]):
        s = work(i)
        args = [] if i % 3 == 0 else (["--x", str(s % 100)] if i % 3 == 1 else ["--flag", "a", "b"])
        ns = vars(p.parse_args(args))
        out.append(sorted(ns.items()))
        out.append([held["marker"] is argparse.SUPPRESS, all(v is argparse.SUPPRESS for v in held["list"])])
    return [len(out), out[:6], [o for o in out[1::2] if o != [True, True]][:2]]
