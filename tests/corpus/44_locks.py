"""Locks held across checkpoints: a Lock taken in a `with`, an RLock taken twice, a Condition and a queue.Queue
(locks inside Python objects, with bound methods of the lock), an Event, and a lock shared by two objects. After a
restore each must be in the state it had: held ones held (by the job's thread), free ones free, and identity
shared."""
import queue
import threading


class Account:
    def __init__(self, lock):
        self.lock = lock
        self.balance = 0


def main(inp):
    lock = threading.Lock()
    rlock = threading.RLock()
    cond = threading.Condition()
    q = queue.Queue()
    ev = threading.Event()
    shared = threading.Lock()
    a, b = Account(shared), Account(shared)
    out = []
    check = 0
    for r in range(inp["rounds"]):
        with lock:
            s = 0
            for i in range(300):
                s = (s * 31 + i + r) % 1000003
            held = lock.locked()
        with rlock:
            with rlock:
                for i in range(200):
                    s = (s + i) % 1000003
            inner = rlock._is_owned()
        with cond:
            q.put(s)
            cond.notify_all()
        with a.lock:
            a.balance += 1
            same = b.lock.locked() and a.lock is b.lock
        if r % 7 == 0:
            ev.set()
        elif ev.is_set():
            ev.clear()
        row = (q.get_nowait(), held, inner, rlock._is_owned(), same, ev.is_set(), lock.locked())
        check = (check * 31 + hash(row[1:]) + row[0]) % 1000003
        if r % 100 == 0:
            out.append(row)
    out.append(check)
    try:
        rlock.release()
        out.append("released an RLock not held")
    except RuntimeError:
        out.append("RuntimeError")
    return out
