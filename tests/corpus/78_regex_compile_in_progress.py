"""re's compiler, preempted while it compiles a pattern: its parse tree (`re._parser.SubPattern`) holds re's
opcodes, int subclasses that refuse to be pickled (`__reduce__ = None`), so every checkpoint there waited. Saved
by reference to re's own constants, the compile resumes, and the pattern matches as one compiled in one go."""
import re


def main(inp):
    out = []
    text = "abc-12 de-xx kk-3 k1 zz-xxxx q-7k3 " * 4
    for i in range(inp["n"]):
        alts = "|".join("k%d" % j for j in range(i % 25))
        pat = r"(?P<w%d>[a-z]{%d,%d})-(\d+|x{%d})(?:%s)?" % (i, 1 + i % 3, 3 + i % 5, 1 + i % 4, alts)
        rx = re.compile(pat)  # a new pattern each time: compiled, not found in re's cache
        out.append(len(rx.findall(text)) * 1000 + rx.groups)
    return [sum(out), out[:10], out[-5:]]
