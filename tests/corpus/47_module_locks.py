"""A lock a library module binds, held by the job across checkpoints (what logging does between its
`_acquireLock()` and `_releaseLock()`): the lock is saved by reference, so the restoring process must hold it
again, as many times as the job did, or the job's release fails."""
import logging
import threading


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        logging._acquireLock()
        try:
            with logging._lock:  # an RLock: held twice here
                s = 0
                for i in range(800):
                    s = (s * 31 + i + r) % 1000003
                out.append((s, logging._lock._is_owned()))
        finally:
            logging._releaseLock()
        out.append(logging._lock._is_owned())
    try:
        logging._lock.release()
        out.append("released a lock not held")
    except RuntimeError:
        out.append("RuntimeError")
    return out
