import threading


def main(inp):
    guard = threading.Lock()
    total = 0
    for i in range(inp["n"]):
        with guard:
            total += i % 7
    return total
