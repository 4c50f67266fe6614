"""A context variable the job sets to a value that cannot be saved (a socket): left out of the checkpoint
rather than stopping every checkpoint of the job; the job never reads it after setting it."""
import contextvars
import socket

CONN = contextvars.ContextVar("conn")
COUNT = contextvars.ContextVar("count", default=0)


def main(inp):
    CONN.set(socket.socket())
    out = []
    for r in range(inp["rounds"]):
        COUNT.set(COUNT.get() + 1)
        s = 0
        for i in range(2000):
            s = (s + i * r) % 1000003
        out.append((s, COUNT.get()))
    return out
