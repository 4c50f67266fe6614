import socket


def main(inp):
    guard = socket.socket()
    total = 0
    for i in range(inp["n"]):
        total += i % 7
    guard.close()
    return total
