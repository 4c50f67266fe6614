import time


def main(inp):
    t = 0
    for i in range(3):
        time.sleep(inp["sleep"])
        t += i
    return t
