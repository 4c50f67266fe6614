def bank():
    balance = 0
    log = []

    def deposit(x):
        nonlocal balance
        balance += x
        log.append(("d", x))

    def withdraw(x):
        nonlocal balance
        if balance >= x:
            balance -= x
            log.append(("w", x))
            return True
        return False

    def report():
        return balance, len(log)

    return deposit, withdraw, report


def main(inp):
    dep, wd, rep = bank()
    ok = 0
    for i in range(inp["n"]):
        dep(i % 11)
        if wd(i % 7 + 3):
            ok += 1
        s = 0
        for j in range(300):
            s += j
    return [rep(), ok]
