"""A `re.Scanner` held across checkpoints, beside difflib, string.Template, textwrap and `re.finditer`: the
scanner's pattern is compiled from parsed pieces, not from a source string (its `pattern` is None), so re's own
pickling, which compiles the source again, failed at every restore ("first argument must be string or compiled
pattern"). It is saved as its compiled code, read back and checked at the capture."""
import difflib
import string
import textwrap
import re


def main(inp):
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    tpl = string.Template("$who saw $n ${what}s")
    sc = re.Scanner([(r"\d+", lambda s, t: ("N", int(t))), (r"[a-z]+", lambda s, t: ("W", t)), (r"\s+", None)])
    out = []
    tot = 0
    for i in range(inp["n"]):
        a = " ".join(words[(i + k) % 8] for k in range(12))
        b = " ".join(words[(i * 3 + k) % 8] for k in range(12))
        sm = difflib.SequenceMatcher(None, a, b)
        r = sm.ratio()
        ops = sm.get_opcodes()
        txt = tpl.substitute(who=words[i % 8], n=i, what=words[(i + 1) % 8])
        toks, rest = sc.scan(txt + " " + str(i * 7))
        wrapped = textwrap.wrap(a, width=23)
        for m in re.finditer(r"(\w)a", a):
            tot = (tot + m.start() + ord(m.group(1))) % 1000003
        tot = (tot + int(r * 1000) + len(ops) + len(toks) + len(wrapped)) % 1000003
        if i % 50 == 0:
            out.append(textwrap.shorten(txt, 20))
    return [tot, out[-3:]]
