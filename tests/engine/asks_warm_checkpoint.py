"""A job that calls the runtime's warm-up hook (`_mlrs.warm_checkpoint`), as job code can: outside a fresh
child's warm-up it must do nothing (no checkpoint of the job is taken, nothing reaches the host)."""


def main(n):
    rs = __import__("_mlrs")
    for _ in range(50):
        rs.warm_checkpoint()
    s = 0
    for i in range(n):
        s += i
    return s
