"""Morphs (``microlambda_rt.morph``) built and run without the Rust half: a frame resumed mid-function from
given locals and value stack must finish as the original would have."""

import sys
import unittest

from microlambda_rt.analysis import code_info
from microlambda_rt.morph import K_FUNC, _fix_lasti, _Morph, _morph_function, _shift_marks, _slot_names, _template

from .helpers import fake_module, units_of

SOURCE = '''
def add_then_double(a, b):
    c = a + b
    return c * 2

def total(xs):
    t = 0
    for x in xs:
        t += x
    return t

def kwonly(a, *, k):
    return a - k

def kept(xs, p):
    t = []
    try:
        for x in filter(p, xs):
            t.append(x)
    except ValueError as e:
        t.append(str(e))
    return t
'''


def resume(fn, target, locals_by_name, stack=()):
    code = fn.__code__
    info = code_info(code)
    names = _slot_names(code)
    slots = tuple(sorted(names.index(n) for n in locals_by_name))
    values = [locals_by_name[names[s]] for s in slots]
    mask = tuple(False for _ in stack)
    m = _Morph(info, _template(info, K_FUNC, target, slots, mask, None, None))
    m.fill(values, list(stack))
    return _morph_function(m.code, code, fn.__module__, fn.__qualname__, None)


class Morphs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mod = fake_module("mlrt_test_morph_job", SOURCE)

    @classmethod
    def tearDownClass(cls):
        sys.modules.pop("mlrt_test_morph_job", None)

    def test_resume_at_the_return_with_a_bound_local(self):
        f = self.mod.add_then_double
        target = units_of(f.__code__, "LOAD_FAST")[-1]  # `c` in `return c * 2`
        self.assertEqual(resume(f, target, {"a": 1, "b": 2, "c": 20})(), 40)

    def test_resume_a_loop_with_its_iterator_on_the_stack(self):
        f = self.mod.total
        (target,) = units_of(f.__code__, "FOR_ITER")
        xs = [1, 2, 3, 4]
        it = iter(xs)
        next(it)
        next(it)
        self.assertEqual(resume(f, target, {"xs": xs, "t": 100}, [it])(), 107)

    def test_parameters_unbound_at_the_checkpoint_are_unbound_again(self):
        f = self.mod.add_then_double
        target = units_of(f.__code__, "LOAD_FAST")[-1]
        with self.assertRaises(UnboundLocalError):
            resume(f, target, {"a": 1})()

    def test_keyword_only_parameters_get_placeholders(self):
        f = self.mod.kwonly
        (target,) = units_of(f.__code__, "LOAD_FAST")[:1]
        self.assertEqual(resume(f, target, {"a": 10, "k": 3})(), 7)

    def test_morph_keeps_no_reference_to_restored_values(self):
        f = self.mod.add_then_double
        target = units_of(f.__code__, "LOAD_FAST")[-1]
        fn = resume(f, target, {"a": 1, "b": 2, "c": 3})
        fn()
        lists = [k for k in fn.__code__.co_consts if type(k) is list]
        self.assertTrue(lists)
        self.assertTrue(all(not k for k in lists), "the prologue clears its value lists")

    def test_templates_are_shared_by_frames_of_the_same_shape(self):
        info = code_info(self.mod.total.__code__)
        (target,) = units_of(info.code, "FOR_ITER")
        t1 = _template(info, K_FUNC, target, (0, 1), (False,), None, None)
        t2 = _template(info, K_FUNC, target, (0, 1), (False,), None, None)
        self.assertIs(t1, t2)

    def test_a_loop_over_filter_resumed_in_its_predicate_goes_on_as_filter_next_would(self):
        # The capture's plan for `for x in filter(p, xs)` stopped in p (`trampolines._through_c`): the loop's
        # stack, then the filter and the item p was called on; the prologue calls the restored p (here a
        # function returning its result or raising) and `_filter_rest` does what filter_next does with it.
        from microlambda_rt.morph import A_FILTER

        f = self.mod.kept
        code = f.__code__
        info = code_info(code)
        (u,) = units_of(code, "FOR_ITER")
        ins = info.instr(u)

        def run(xs, pulled, p, inner, invert=False):
            src = iter(xs)
            for _ in range(pulled + 1):  # filter_next pulled the item p was called on
                next(src)
            it = filter(p, src)
            call_unit = (u, (A_FILTER, ins.end + ins.arg, invert))
            names = _slot_names(code)
            slots = tuple(sorted(names.index(n) for n in ("xs", "p", "t")))
            m = _Morph(info, _template(info, K_FUNC, ins.end, slots, (False,) * 3, call_unit, None))
            m.fill([xs, p, [-1]], [it, it, xs[pulled]])
            m.holder[:] = [inner]
            return _morph_function(m.code, code, f.__module__, f.__qualname__, None)()

        def odd(v):
            return v & 1

        def stop():
            raise StopIteration

        def bad():
            raise ValueError("bad")

        xs = [1, 2, 3, 4, 5, 6, 7]
        self.assertEqual(run(xs, 0, odd, lambda: 1), [-1, 1, 3, 5, 7])  # the item passes
        self.assertEqual(run(xs, 0, odd, lambda: 0), [-1, 3, 5, 7])  # it does not: the filter's next one
        self.assertEqual(run(xs, 0, odd, lambda: [], invert=True), [-1, 1, 3, 5, 7])  # filterfalse
        self.assertEqual(run([1, 2, 4], 2, odd, lambda: 0), [-1])  # the last item fails: the loop ends
        self.assertEqual(run(xs, 0, odd, stop), [-1])  # StopIteration in the predicate ends the loop
        self.assertEqual(run(xs, 0, odd, bad), [-1, "bad"])  # another exception goes to the loop's handler

    def test_saved_lasti_values_shift_both_ways(self):
        stack = [5, "x", 7]
        shifted = _shift_marks(stack, (0, 2), 10)
        self.assertEqual(shifted, [15, "x", 17])
        self.assertEqual([_fix_lasti(v, i, {0, 2}, 10) for i, v in enumerate(shifted)], stack)
        self.assertIs(_shift_marks(stack, (), 10), stack)


if __name__ == "__main__":
    unittest.main()


class OperatorRests(unittest.TestCase):
    """What a resumed COMPARE_OP/BINARY_OP makes of the forward method's result must be what C makes of it: each
    case runs the real operator, and the rest function on the forward method's own result."""

    def test_comparisons_and_binary_operations_end_as_c_ends_them(self):
        import operator

        from microlambda_rt.morph import _binop_rest, _compare_rest
        from microlambda_rt.ops import NB_INPLACE, NB_STEMS

        class Num:
            def __init__(self, v):
                self.v = v

            def __lt__(self, o):
                return self.v < o.v if isinstance(o, Num) else NotImplemented

            def __eq__(self, o):
                return NotImplemented if isinstance(o, Num) and o.v % 2 else isinstance(o, Num) and self.v == o.v

            __hash__ = object.__hash__

            def __sub__(self, o):
                return Num(self.v - o) if isinstance(o, int) and o >= 0 else NotImplemented

            def __isub__(self, o):
                return NotImplemented

            def __repr__(self):
                return f"Num({self.v})"

        class Other:
            def __gt__(self, o):
                return "reflected"

            def __rsub__(self, o):
                return "rsub"

        def outcome(f):
            try:
                r = f()
            except TypeError as e:
                return ("TypeError", str(e))
            return r.v if isinstance(r, Num) else r

        a = Num(4)
        ops = [(0, operator.lt), (2, operator.eq), (3, operator.ne), (4, operator.gt)]
        for b in (Num(5), Num(3), Other(), 7, a):
            for op, fn in ops:
                forward = getattr(type(a), ("__lt__", "__le__", "__eq__", "__ne__", "__gt__", "__ge__")[op])(a, b)
                self.assertEqual(outcome(lambda: _compare_rest(op, forward, b, a)), outcome(lambda: fn(a, b)), (b, op))
            sub = NB_STEMS.index("sub")
            self.assertEqual(outcome(lambda: _binop_rest(sub, False, Num.__sub__(a, b), b, a)),
                             outcome(lambda: a - b), b)

            def isub():
                c = a
                c -= b
                return c

            self.assertEqual(outcome(lambda: _binop_rest(sub + NB_INPLACE, True, Num.__isub__(a, b), b, a)),
                             outcome(isub), b)

        class Bag:
            def __contains__(self, x):
                return x % 3  # C takes the truth of what it returns

        from microlambda_rt.morph import _contains_rest

        bag = Bag()
        for x in range(4):
            self.assertEqual(_contains_rest(0, Bag.__contains__(bag, x), bag, x), x in bag)
            self.assertEqual(_contains_rest(1, Bag.__contains__(bag, x), bag, x), x not in bag)
