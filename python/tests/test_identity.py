"""Code identity (``microlambda_rt.identity``): hashes that change with the code, references that find the very
code object again from its module, and a clear refusal when the code changed."""

import sys
import unittest

from microlambda_rt.base import RestoreError
from microlambda_rt.identity import _code_ref, _lookup_code, code_hash

from .helpers import fake_module, first_code

SOURCE = '''
def outer(x):
    def inner(y):
        return y + 1
    return inner(x) * 2

class Shape:
    @staticmethod
    def make():
        return Shape()

    @property
    def area(self):
        return 0

    class Inner:
        def method(self):
            return [i for i in range(3)]

square = lambda v: v * v
'''


class Hash(unittest.TestCase):
    def test_same_source_same_hash(self):
        a = first_code("def f(x):\n    return x + 1\n", "f")
        b = first_code("def f(x):\n    return x + 1\n", "f")
        self.assertIsNot(a, b)
        self.assertEqual(code_hash(a), code_hash(b))

    def test_a_changed_constant_or_name_changes_the_hash(self):
        base = code_hash(first_code("def f(x):\n    return x + 1\n", "f"))
        self.assertNotEqual(base, code_hash(first_code("def f(x):\n    return x + 2\n", "f")))
        self.assertNotEqual(base, code_hash(first_code("def f(y):\n    return y + 1\n", "f")))

    def test_a_change_in_a_nested_function_changes_the_outer_hash(self):
        a = first_code("def f():\n    def g():\n        return 1\n    return g\n", "f")
        b = first_code("def f():\n    def g():\n        return 2\n    return g\n", "f")
        self.assertNotEqual(code_hash(a), code_hash(b))


class References(unittest.TestCase):
    NAME = "mlrt_test_identity_job"

    def setUp(self):
        self.mod = fake_module(self.NAME, SOURCE)

    def tearDown(self):
        sys.modules.pop(self.NAME, None)

    def codes(self):
        m = self.mod
        return {
            "outer": m.outer.__code__,
            "inner": next(k for k in m.outer.__code__.co_consts if hasattr(k, "co_code")),
            "staticmethod": m.Shape.make.__code__,
            "property": m.Shape.area.fget.__code__,
            "nested class": m.Shape.Inner.method.__code__,
            "comprehension": next(k for k in m.Shape.Inner.method.__code__.co_consts if hasattr(k, "co_code")),
            "lambda": m.square.__code__,
        }

    def test_every_code_of_the_module_is_found_again(self):
        for what, code in self.codes().items():
            ref = _code_ref(code)
            self.assertIsNotNone(ref, what)
            self.assertEqual(ref[:3], (self.NAME, code.co_qualname, code.co_firstlineno))
            self.assertIs(_lookup_code(*ref), code, what)

    def test_code_outside_any_module_has_no_reference(self):
        self.assertIsNone(_code_ref(first_code("def f():\n    return 1\n", "f")))

    def test_changed_code_is_refused(self):
        ref = _code_ref(self.mod.outer.__code__)
        fake_module(self.NAME, SOURCE.replace("* 2", "* 3"))
        with self.assertRaisesRegex(RestoreError, "changed since the checkpoint"):
            _lookup_code(*ref)

    def test_missing_module_is_refused(self):
        with self.assertRaisesRegex(RestoreError, "cannot be imported"):
            _lookup_code("mlrt_no_such_module", "f", 1, "0" * 16)


if __name__ == "__main__":
    unittest.main()
