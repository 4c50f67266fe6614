"""Standard streams rebound by the job: prints captured with `contextlib.redirect_stdout` into a StringIO,
`redirect_stderr` nested inside it, and `sys.stdout` assigned by hand and put back in a `finally`. sys.stdout
is the interpreter's, not an object of the job: after a restore the prints went to the process's own stdout and
the captured text lost every line printed after the checkpoint."""
import contextlib
import io
import sys


def work(i):
    s = 0
    for k in range(200):
        s = (s * 31 + i + k) % 1000003
    return s


def report(n, sink):
    for i in range(n):
        print("row", i, work(i))
        if i % 50 == 0:
            print("note", i, file=sys.stderr)
            sink.append(i)


def main(inp):
    n = inp["n"]
    out, err, sink = io.StringIO(), io.StringIO(), []
    with contextlib.redirect_stdout(out):
        report(n, sink)
        with contextlib.redirect_stderr(err):
            report(n, sink)
    manual = io.StringIO()
    saved = sys.stdout
    sys.stdout = manual
    try:
        for i in range(n):
            sys.stdout.write(f"{work(i) % 97} ")
            print(i % 3, end=";")
    finally:
        sys.stdout = saved
    return {"out": len(out.getvalue().splitlines()), "out_tail": out.getvalue()[-60:],
            "err": err.getvalue().splitlines()[-3:], "manual": len(manual.getvalue()), "sink": len(sink),
            "restored": [sys.stdout is sys.__stdout__, sys.stderr is sys.__stderr__]}
