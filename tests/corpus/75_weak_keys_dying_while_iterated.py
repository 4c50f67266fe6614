"""Keys of a `WeakKeyDictionary` and members of a `WeakSet` that die while the container is iterated: their
removal waits for the iteration to end (`_pending_removals`), so the container's dict or set holds *dead* weak
references as keys at the checkpoints in between. A dead reference comes back dead with the hash it had, so the
restored dict and set can hold it, and the removal still finds it when the iteration ends."""
import weakref


class Key:
    def __init__(self, k):
        self.k = k


def work(i, n=60):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def main(inp):
    t = 0
    sizes = []
    for r in range(inp["rounds"]):
        keys = [Key(k) for k in range(30)]
        wk = weakref.WeakKeyDictionary((key, key.k * 7) for key in keys)
        ws = weakref.WeakSet(keys)
        for key, v in wk.items():
            if key.k % 4 == r % 4:
                keys[key.k] = None  # dies once the loop lets go of it: its removal waits
            key = None
            t = (t + work(v + r)) % 1000003
        for m in ws:
            if m.k % 5 == r % 5 and keys[m.k] is not None:
                keys[m.k] = None
            m = None
            t = (t + work(r, 30)) % 1000003
        sizes.append((len(wk), len(ws), len(wk._pending_removals), len(ws._pending_removals)))
    return [t, sizes[:6], sum(a + b for a, b, _, _ in sizes)]
