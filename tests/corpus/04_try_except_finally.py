class Odd(Exception):
    pass


def risky(i):
    s = 0
    for j in range(500):
        s += j * i % 17
    if i % 5 == 0:
        raise Odd(i)
    if i % 7 == 0:
        raise ValueError(f"seven {i}")
    return s


def main(inp):
    log = []
    total = 0
    for i in range(inp["n"]):
        try:
            try:
                total += risky(i)
            except Odd as e:
                log.append(("odd", e.args[0]))
                for k in range(300):
                    total += k % 3
                raise
            finally:
                total += 1
        except Odd:
            total -= 2
        except ValueError as e:
            log.append(("val", str(e)))
        else:
            total += 3
        finally:
            total ^= 1
    return [total, log[-10:], len(log)]
