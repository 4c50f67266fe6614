"""Methods called through a bound method made for the call, `obj.m(*args, **kwargs)` (CALL_FUNCTION_EX): what
library wrappers that forward their arguments do (matplotlib's `Figure.savefig` calling
`self.canvas.print_figure(fname, **kwargs)`). The callee is entered from C; the caller resumes with its result."""


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


def main(inp):
    fig = Figure(Canvas(3))
    out = []
    for r in range(inp["rounds"]):
        args = (inp["n"],)
        out.append(fig.save(inp["n"], offset=r, salt=r % 5))
        out.append(fig.canvas.render(*args, offset=r))
    out.append(fig.canvas.calls)
    return out
