"""C trampolines (``microlambda_rt.trampolines``): a callee entered from C is resumed as the caller's own call
only when the C in between provably made that very call."""

import types
import unittest

from microlambda_rt import base
from microlambda_rt.trampolines import _fills, _getattr_calls, _setattr_calls


class Hooks:
    def __getattr__(self, name):
        return len(name)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


def callee(fn, *args):
    """What the capture knows of a frame entered from C: its function, code and arguments."""
    return types.SimpleNamespace(func=fn, code=fn.__code__, locals=list(args))


class AttributeHooks(unittest.TestCase):
    def test_getattr_called_for_the_callers_attribute_is_its_lookup(self):
        h = Hooks()
        self.assertTrue(_getattr_calls(h, "size", Hooks.__getattr__, callee(Hooks.__getattr__, h, "size")))

    def test_getattr_called_for_another_attribute_is_not(self):
        # A C descriptor of `size` looking up `_cache` on the owner reaches __getattr__ too (pandas' cache_readonly).
        h = Hooks()
        self.assertFalse(_getattr_calls(h, "size", Hooks.__getattr__, callee(Hooks.__getattr__, h, "_cache")))

    def test_setattr_must_be_setting_the_callers_attribute(self):
        h = Hooks()
        self.assertTrue(_setattr_calls(h, "x", Hooks.__setattr__, callee(Hooks.__setattr__, h, "x", 1)))
        self.assertFalse(_setattr_calls(h, "x", Hooks.__setattr__, callee(Hooks.__setattr__, h, "y", 1)))


if __name__ == "__main__":
    unittest.main()


class ContainerFillers(unittest.TestCase):
    """A call filling a new container from a generator is resumed as the container so far, extended by the rest,
    then what the C function does after: as the uninterrupted call would end."""

    def rest(self, below, callable_, done, *head):
        offset, kind, fn, cls = _fills(below, callable_)
        self.assertIs(type(done), kind)
        return offset, cls(fn, done)(*head, (x for x in (3, 1, 2)))

    def test_each_filler_ends_as_its_c_function_would(self):
        self.assertEqual(self.rest(base.NULL, list, [9, 0]), (0, [9, 0, 3, 1, 2]))
        self.assertEqual(self.rest(base.NULL, sorted, [9, 0]), (0, [0, 1, 2, 3, 9]))
        self.assertEqual(self.rest(base.NULL, set, {9}), (0, {1, 2, 3, 9}))
        self.assertEqual(self.rest(base.NULL, frozenset, frozenset({9})), (0, frozenset({1, 2, 3, 9})))
        # A tuple's items so far come as a list (its unfilled slots are NULL), checked apart from the type.
        self.assertEqual(_fills(base.NULL, tuple)[2]([9, 0], iter([3])), (9, 0, 3))
        offset, fn = _fills(str.__dict__["join"], "-")[0], _fills(str.__dict__["join"], "-")[2]
        self.assertEqual((offset, fn(["a"], "-", (c for c in "bc"))), (-1, "a-b-c"))
        self.assertEqual(_fills(bytes.__dict__["join"], b",")[2]([b"a"], b",", iter([b"b"])), b"a,b")

    def test_other_calls_are_not_fillers(self):
        self.assertIsNone(_fills(base.NULL, min))  # keeps what it gathered in C locals: waited out
        self.assertIsNone(_fills(base.NULL, sum))
        self.assertIsNone(_fills(base.NULL, {}))  # an unhashable callable
        self.assertIsNone(_fills(str.__dict__["join"], b"-"))  # str.join called on bytes: not this method
        self.assertIsNone(_fills(list.__dict__["extend"], []))  # stateless: called again as it is
