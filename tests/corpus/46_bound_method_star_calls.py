"""Methods called through a bound method made for the call, `obj.m(*args, **kwargs)` (CALL_FUNCTION_EX): what
library wrappers that forward their arguments do (matplotlib's `Figure.savefig` calling
`self.canvas.print_figure(fname, **kwargs)`); and a `functools.partial` of one argument held in a local, whose
call writes that argument into the callable's stack slot. The callee is entered from C; the caller resumes with
its result."""
import functools


class Canvas:
    def __init__(self, scale):
        self.scale = scale
        self.calls = 0

    def render(self, n, *, offset=0, **opts):
        self.calls += 1
        s = offset
        for i in range(n):
            s = (s * 31 + i * self.scale + opts.get("salt", 0)) % 1000003
        return s

    def forward(self, *args, **kwargs):
        return self.render(*args, **kwargs)


class Figure:
    def __init__(self, canvas):
        self.canvas = canvas

    def save(self, n, **kwargs):
        return self.canvas.forward(n, **kwargs) + 1


def scaled(k, n):
    s = k
    for i in range(n):
        s = (s * 7 + i) % 1000003
    return s


def main(inp):
    fig = Figure(Canvas(3))
    f = functools.partial(scaled, 5)
    out = []
    for r in range(inp["rounds"]):
        args = (inp["n"],)
        out.append(fig.save(inp["n"], offset=r, salt=r % 5))
        out.append(fig.canvas.render(*args, offset=r))
        out.append(f(inp["n"]))
    out.append(fig.canvas.calls)
    return out
