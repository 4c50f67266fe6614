import sys
import traceback


class AppError(Exception):
    pass


def parse(i):
    if i % 4 == 0:
        return int("x%d" % i)
    s = 0
    for k in range(300):
        s += k % (i % 9 + 1)
    return s


def step(i):
    try:
        return parse(i)
    except ValueError as e:
        raise AppError(f"step {i}") from e


def main(inp):
    out = []
    for i in range(inp["n"]):
        try:
            out.append(step(i))
        except AppError as e:
            cur = sys.exception()
            work = 0
            for k in range(400):
                work += k
            lines = traceback.format_exc().splitlines()
            out.append([str(e), type(e.__cause__).__name__, cur is e, lines[-1], work, len(lines) > 3])
    return out[-12:]
