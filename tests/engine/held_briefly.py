import socket


def hold(n):
    sock = socket.socket()  # cannot be saved, and held only for the length of this call
    acc = 0
    for i in range(n):
        acc += i % 7
    sock.close()
    return acc


def main(inp):
    total = 0
    for _ in range(inp["rounds"]):
        total += hold(inp["n"])
        for i in range(inp["n"] // 4):
            total += i % 3
    return total
