"""C trampolines (``microlambda_rt.trampolines``): a callee entered from C is resumed as the caller's own call
only when the C in between provably made that very call."""

import fractions
import types
import unittest

from microlambda_rt import base
from microlambda_rt.trampolines import _fills, _getattr_calls, _NewThenInit, _new_called_by, _setattr_calls


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


class Interned:
    cache = {}

    def __new__(cls, key, *, scale=1):
        return cls.cache.setdefault(key, object.__new__(cls))

    def __init__(self, key, *, scale=1):
        self.inits = getattr(self, "inits", 0) + 1
        self.value = key * scale


class Other(Interned):
    def __new__(cls, key):
        return [key]


class Bad(Interned):
    def __init__(self, key, *, scale=1):
        return key


class Meta(type):
    def __getattribute__(cls, name):
        return type.__getattribute__(cls, name)


class Hooked(metaclass=Meta):
    def __new__(cls):
        return object.__new__(cls)


class Counting(type):
    """A metaclass whose `__call__` goes on with `super().__call__(...)` (type_call)."""

    def __call__(cls, *args, **kwargs):
        return super().__call__(*args, **kwargs)


class Counted(metaclass=Counting):
    def __new__(cls, n):
        return object.__new__(cls)


class DataNew:
    """A data descriptor: on a metaclass under the name `__new__`, `Cls.__new__` finds it before the class's."""

    def __get__(self, obj, owner=None):
        return staticmethod(lambda cls: None)

    def __set__(self, obj, value):
        raise AttributeError


class MetaWithDataNew(type):
    __new__ = DataNew()


def _with_data_new(cls):
    return object.__new__(cls)


# Made by type.__new__ itself: a class statement would call the metaclass, whose `__new__` is that descriptor.
WithDataNew = type.__new__(MetaWithDataNew, "WithDataNew", (), {"__new__": staticmethod(_with_data_new)})


class ClassCallsInNew(unittest.TestCase):
    """A class call stopped in its Python `__new__` is resumed as `type_call` goes on: `__init__` with the same
    arguments when the result is an instance, the result returned; proved only where `slot_tp_new` calls it."""

    def test_only_the_classs_own_new_called_on_it_is_taken_for_type_calls(self):
        new = Interned.__dict__["__new__"].__func__
        self.assertIs(_new_called_by(Interned, new, callee(new, Interned, 3)), Interned)
        self.assertIs(_new_called_by(Bad, new, callee(new, Bad, 3)), Bad)  # inherited
        self.assertIsNone(_new_called_by(Interned, new, callee(new, Bad, 3)))  # called on another class
        self.assertIsNone(_new_called_by(Other, new, callee(new, Other, 3)))  # Other's own __new__ runs
        hooked = Hooked.__dict__["__new__"].__func__
        self.assertIsNone(_new_called_by(Hooked, hooked, callee(hooked, Hooked)))  # a metaclass's own lookup

    def test_super_call_in_a_metaclass_and_an_abc_metaclass_are_type_calls(self):
        new = Counted.__dict__["__new__"].__func__
        wrapper = super(Counting, Counted).__call__  # what `super().__call__` in Counting.__call__ calls
        self.assertIs(_new_called_by(wrapper, new, callee(new, Counted, 3)), Counted)
        self.assertIsNone(_new_called_by(Counted, new, callee(new, Counted, 3)))  # Counting's own __call__ runs
        other = type.__dict__["__repr__"].__get__(Counted)  # another slot of the same class
        self.assertIsNone(_new_called_by(other, new, callee(new, Counted, 3)))
        fnew = fractions.Fraction.__dict__["__new__"].__func__  # ABCMeta defines __new__, a plain function
        self.assertIs(_new_called_by(fractions.Fraction, fnew, callee(fnew, fractions.Fraction, 3)),
                      fractions.Fraction)
        lying = WithDataNew.__dict__["__new__"].__func__  # a data descriptor `__new__` on the metaclass wins
        self.assertIsNone(_new_called_by(WithDataNew, lying, callee(lying, WithDataNew)))

    def test_what_type_call_does_after_new(self):
        then = _NewThenInit(Interned, ("scale",), 2)
        obj = Interned.__new__(Interned, 5, scale=2)
        self.assertIs(then(5, 2, obj), obj)
        self.assertEqual((obj.inits, obj.value), (1, 10))
        self.assertIs(then(5, 3, obj), obj)  # a cached instance is initialised again, as CPython does
        self.assertEqual((obj.inits, obj.value), (2, 15))
        self.assertEqual(_NewThenInit(Other, (), 1)(4, [4]), [4])  # not an instance: no __init__
        with self.assertRaisesRegex(TypeError, r"^__init__\(\) should return None, not 'int'$"):
            _NewThenInit(Bad, (), 1)(7, Bad.__new__(Bad, 7))
        with self.assertRaisesRegex(TypeError, r"^__init__\(\) should return None, not 'int'$"):
            Bad(8)  # the message is CPython's own

    def test_what_type_call_does_after_new_for_a_call_with_star_arguments(self):
        # `Interned(*args, **kw)`: the operands are the argument tuple and the keyword dict (None: no names).
        obj = Interned.__new__(Interned, 6, scale=2)
        self.assertIs(_NewThenInit(Interned, None, 2)((6,), {"scale": 4}, obj), obj)
        self.assertEqual((obj.inits, obj.value), (1, 24))
        self.assertIs(_NewThenInit(Interned, None, 1)((6,), obj), obj)  # `Interned(*args)`: no keywords
        self.assertEqual((obj.inits, obj.value), (2, 6))
        self.assertEqual(_NewThenInit(Other, None, 1)((4,), [4]), [4])
