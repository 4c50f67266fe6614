"""Process settings a job changes with a call, not an object: `os.chdir` into a directory it made, then relative
paths read and written there, and `sys.set_int_max_str_digits` raised to print a big power. A restoring process
had its own working directory (the relative reads failed or read other files) and the 4300-digit limit (str()
raised ValueError)."""
import os
import sys
import tempfile


def digits_sum(n):
    return sum(int(c) for c in str(n))


def main(inp):
    n = inp["n"]
    start = os.getcwd()
    sys.set_int_max_str_digits(inp["digits"])
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            sums = []
            for i in range(n):
                big = (3 + i % 5) ** (inp["power"] + i)
                sums.append(digits_sum(big))
                if i % 10 == 0:
                    with open(f"part{i // 10}.txt", "w") as f:
                        f.write(str(sums[-1]))
            parts = sorted(os.listdir("."))
            total = 0
            for p in parts:
                with open(p) as f:
                    total += int(f.read())
            here = os.path.basename(os.getcwd()) == os.path.basename(d)
        finally:
            os.chdir(start)
    sys.set_int_max_str_digits(0)
    return {"sums": sums[::7], "parts": len(parts), "total": total, "here": here, "back": os.getcwd() == start}
