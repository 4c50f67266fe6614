"""C trampolines (``microlambda_rt.trampolines``): a callee entered from C is resumed as the caller's own call
only when the C in between provably made that very call."""

import types
import unittest

from microlambda_rt.trampolines import _getattr_calls, _setattr_calls


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
