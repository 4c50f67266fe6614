"""Context variables set and reset around work: the tokens context managers hold (what `np.errstate` does), one
token used before the checkpoint, variables with and without a default, one with no value at some instants, one
set without keeping its token."""
import contextvars

SCALE = contextvars.ContextVar("scale", default=2)
MODE = contextvars.ContextVar("mode")
LEVEL = contextvars.ContextVar("level", default=0)  # set with its token dropped: no object of the job holds it


class Scoped:
    def __init__(self, var, value):
        self.var, self.value, self.token = var, value, None

    def __enter__(self):
        self.token = self.var.set(self.value)
        return self

    def __exit__(self, *exc):
        self.var.reset(self.token)


def work(n):
    s = 0
    for i in range(n):
        s = (s + i * SCALE.get()) % 1000003
    return s


def main(inp):
    out = []
    spent = SCALE.set(7)
    SCALE.reset(spent)  # a used token, held to the end
    for r in range(inp["rounds"]):
        LEVEL.set(r % 7)
        with Scoped(SCALE, 3 + r % 4):
            with Scoped(MODE, f"m{r}") as m:
                a = work(800)
                tok = SCALE.set(10)
                b = work(300)
                SCALE.reset(tok)
                c = work(300)
                out.append((a, b, c, SCALE.get(), MODE.get(), m.token.old_value is contextvars.Token.MISSING))
        out.append((SCALE.get(), MODE.get("unset"), work(200) + LEVEL.get()))
    try:
        SCALE.reset(spent)
        out.append("reset twice")
    except RuntimeError as e:
        out.append(type(e).__name__)
    return out

