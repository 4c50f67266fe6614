def main(inp):
    words = set()
    buf = bytearray()
    text = []
    big = 1
    fl = 0.0
    for i in range(inp["n"]):
        w = "w%d_%s" % (i % 97, chr(97 + i % 26))
        words.add(w)
        buf += w.encode()[:3]
        text.append(f"{i:05d}:{w.upper()!r}")
        big = (big * 3 + i) % (1 << 3000)
        fl += (i ** 0.5) / (i + 1)
        s = 0
        for j in range(200):
            s += j
    order = list(words)[:10]
    return [len(words), order, bytes(buf[-12:]).hex(), "".join(text)[-40:], big % (10**40), round(fl, 9), str(big % 10**50)]
