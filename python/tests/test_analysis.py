"""Static analysis (``microlambda_rt.analysis``): instruction boundaries, stack depths, saved-lasti slots and
the KW_NAMES rule, checked against ``dis`` and the compiler's own numbers."""

import dis
import unittest

from microlambda_rt.analysis import CodeInfo, _origin, code_info
from microlambda_rt.ops import CALL, EXTENDED_ARG, FOR_ITER, KW_NAMES, PRECALL

from .helpers import first_code, stdlib_codes, units_of


class Boundaries(unittest.TestCase):
    def test_instructions_match_dis_including_extended_args(self):
        # 300 locals: STORE_FAST needs an EXTENDED_ARG, which the analysis folds into the instruction.
        src = "def f():\n" + "".join(f"    x{i} = {i}\n" for i in range(300)) + "    return x299\n"
        for code in [first_code(src, "f")] + stdlib_codes():
            info = CodeInfo(code)
            expect = [(i.offset // 2, i.opcode, i.arg) for i in dis.get_instructions(code) if i.opcode != EXTENDED_ARG]
            got = [(ins.opu, ins.op, ins.arg if ins.op >= dis.HAVE_ARGUMENT else 0) for ins in info.ops]
            self.assertEqual([(u, op) for u, op, _ in got], [(u, op) for u, op, _ in expect], code.co_qualname)
            for (_, op, a), (_, _, b) in zip(got, expect):
                if op >= dis.HAVE_ARGUMENT:
                    self.assertEqual(a, b)
        f = CodeInfo(first_code(src, "f"))
        self.assertTrue(any(ins.start < ins.opu for ins in f.ops), "an EXTENDED_ARG prefix was expected")

    def test_every_unit_is_owned_by_the_instruction_around_it(self):
        for code in stdlib_codes():
            info = CodeInfo(code)
            self.assertEqual(len(info.owner), len(code.co_code) // 2)
            for u in range(len(info.owner)):
                ins = info.instr(u)
                self.assertTrue(ins.start <= u < ins.end, (code.co_qualname, u))


class AfterCall(unittest.TestCase):
    """Where a frame waiting in a call into C goes on: the units a breakpoint is written at."""

    def _starts(self, code):
        return {i.offset // 2 for i in dis.get_instructions(code)}

    def test_a_call_goes_on_at_the_next_instruction_and_precall_after_its_call(self):
        code = first_code("def f(xs, k):\n    ys = sorted(xs, key=k)\n    return ys\n", "f")
        info = CodeInfo(code)
        call = info.instr(units_of(code, "CALL")[0])
        (after,) = info.after_call(call)
        self.assertEqual(dis._all_opname[code.co_code[2 * after]], "STORE_FAST")
        precall = info.instr(units_of(code, "PRECALL")[0])
        self.assertEqual(info.after_call(precall), (call.opu, after))  # the CALL itself, or past it

    def test_a_store_that_runs_a_finalizer_goes_on_past_the_load_it_is_paired_with(self):
        # `x = None` then a line that loads a local: quickened, the store and the load are STORE_FAST__LOAD_FAST,
        # which executes the load as its second half, reading only that unit's argument. A breakpoint goes after
        # the load (the first unit the frame dispatches on), never on it: there it would be read as the load's
        # argument (a wait with no breakpoint at all ended only by the luck of a poll between two finalizers).
        from microlambda_rt.capture import _dispatched_from

        src = "def f(b, out):\n    b = None\n    out.append(1)\n    a = c = 1\n    return a, c\n"
        code = first_code(src, "f")
        fn = type(lambda: 0)(code, {})
        for _ in range(10):  # quickened at its 8th call
            fn(object(), [])
        adaptive = code._co_code_adaptive
        info, shift, _ = _origin(code)
        store, load = units_of(code, "STORE_FAST")[0], units_of(code, "LOAD_FAST")[0]
        self.assertEqual(dis._all_opname[adaptive[2 * store]], "STORE_FAST__LOAD_FAST")
        (after,) = info.after_call(info.instr(store))
        self.assertEqual(after, load)
        self.assertEqual(_dispatched_from(info, shift, adaptive, after + shift), load + 1)
        # A chain of pairs (`a = c = 1; return a, c`: store a with store c, store c with load a, load a with load
        # c): past all of them, to the first unit no superinstruction may read as its second half.
        first, second = units_of(code, "STORE_FAST")[1:3]
        self.assertEqual(dis._all_opname[adaptive[2 * first]], "STORE_FAST__STORE_FAST")
        self.assertEqual(dis._all_opname[adaptive[2 * second]], "STORE_FAST__LOAD_FAST")
        build = units_of(code, "BUILD_TUPLE")[0]
        self.assertEqual(_dispatched_from(info, shift, adaptive, second + shift), build)
        # The first half of a pair is dispatched on: a frame going on there goes on there.
        self.assertEqual(_dispatched_from(info, shift, adaptive, store + shift), store)

    def test_a_for_loop_over_a_c_iterator_goes_on_in_its_body_or_after_it(self):
        code = first_code("def f(xs, g):\n    t = 0\n    for v in map(g, xs):\n        t += v\n    return t\n", "f")
        info = CodeInfo(code)
        for_iter = info.instr(units_of(code, "FOR_ITER")[0])
        body, end = info.after_call(for_iter)
        self.assertEqual(body, for_iter.end)
        self.assertEqual(end, for_iter.end + for_iter.arg)
        self.assertTrue({body, end} <= self._starts(code))

    def test_every_unit_is_an_instruction_start_in_real_code(self):
        for code in stdlib_codes():
            info = CodeInfo(code)
            starts = self._starts(code) | {ins.start for ins in info.ops}
            for ins in info.ops:
                for u in info.after_call(ins):
                    self.assertIn(u, starts, (code.co_qualname, ins.opu, dis.opname[ins.op]))


class Depths(unittest.TestCase):
    def test_simple_expression(self):
        code = first_code("def f(a, b):\n    return a + b\n", "f")
        info = CodeInfo(code)
        ops = {}
        for i in info.ops:
            ops.setdefault(dis.opname[i.op], i.opu)
        self.assertEqual(info.depth_before(ops["LOAD_FAST"]), 0)
        self.assertEqual(info.depth_before(ops["BINARY_OP"]), 2)
        self.assertEqual(info.depth_before(ops["RETURN_VALUE"]), 1)

    def test_loop_body_holds_the_iterator(self):
        code = first_code("def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n", "f")
        info = CodeInfo(code)
        (fi,) = units_of(code, "FOR_ITER")
        self.assertEqual(info.depth_before(fi), 1)
        store_x = next(i.opu for i in info.ops if i.opu > fi and dis.opname[i.op] == "STORE_FAST")
        self.assertEqual(info.depth_before(store_x), 2)

    def test_handlers_start_at_their_table_depth(self):
        src = "def f(x):\n    try:\n        return g(x)\n    except ValueError as e:\n        return e\n"
        code = first_code(src, "f")
        info = CodeInfo(code)
        self.assertTrue(info.table)
        for e in info.table:
            self.assertEqual(info.depth_before(e.target), e.depth + 1 + int(e.lasti))

    def test_depths_stay_within_the_compiler_stack_size(self):
        for code in stdlib_codes():
            info = CodeInfo(code)
            info._analyze()
            reached = [d for d in info._depth if d is not None]
            self.assertTrue(reached, code.co_qualname)
            self.assertTrue(all(0 <= d <= code.co_stacksize for d in reached), code.co_qualname)

    def test_every_reached_handler_of_real_code_starts_at_its_table_depth(self):
        # The analysis finds each instruction's handler once per table entry (not by a scan per instruction):
        # every handler covering a reached instruction is reached, at the depth the table gives it.
        checked = 0
        for code in stdlib_codes():
            info = CodeInfo(code)
            for ins in info.ops:
                e = info.cover(ins.opu)
                if e is None:
                    continue
                try:
                    info.depth_before(ins.opu)
                except Exception:  # noqa: BLE001 - unreachable code after a return, with its handler
                    continue
                self.assertEqual(info.depth_before(e.target), e.depth + 1 + int(e.lasti), code.co_qualname)
                checked += 1
        self.assertGreater(checked, 100)


class LastiMarks(unittest.TestCase):
    def test_lasti_handlers_mark_the_saved_slot(self):
        src = "def f(cm):\n    with cm:\n        g()\n    try:\n        h()\n    finally:\n        k()\n"
        code = first_code(src, "f")
        info = CodeInfo(code)
        lasti_entries = [e for e in info.table if e.lasti]
        self.assertTrue(lasti_entries)
        for e in lasti_entries:
            self.assertIn(e.depth, info.lasti_marks(e.target))

    def test_straight_line_code_has_no_marks(self):
        code = first_code("def f(a):\n    b = a * 2\n    return g(b)\n", "f")
        info = CodeInfo(code)
        self.assertTrue(all(info.lasti_marks(i.opu) == frozenset() for i in info.ops))


class KwnamesFix(unittest.TestCase):
    def test_a_stop_after_kw_names_resumes_at_kw_names(self):
        code = first_code("def f():\n    return g(1, a=2)\n", "f")
        info = CodeInfo(code)
        kw = next(i for i in info.ops if i.op == KW_NAMES)
        pre = next(i for i in info.ops if i.op == PRECALL)
        call = next(i for i in info.ops if i.op == CALL)
        self.assertEqual(info.kwnames_fix(pre.opu), kw.start)
        self.assertEqual(info.kwnames_fix(call.opu), kw.start)
        self.assertEqual(info.kwnames_fix(kw.opu), kw.opu)

    def test_calls_without_keywords_are_unchanged(self):
        code = first_code("def f(xs):\n    for x in xs:\n        g(x)\n", "f")
        info = CodeInfo(code)
        for i in info.ops:
            if i.op in (CALL, PRECALL, FOR_ITER):
                self.assertEqual(info.kwnames_fix(i.opu), i.opu)


class Cache(unittest.TestCase):
    def test_code_info_is_built_once_per_code(self):
        code = first_code("def f():\n    return 1\n", "f")
        self.assertIs(code_info(code), code_info(code))

    def test_origin_of_plain_code_is_itself(self):
        code = first_code("def f():\n    return 1\n", "f")
        info, shift, special = _origin(code)
        self.assertIs(info.code, code)
        self.assertEqual((shift, special), (0, None))


if __name__ == "__main__":
    unittest.main()


class PushedBy(unittest.TestCase):
    def test_the_instruction_that_pushed_a_call_s_callable_is_found_only_when_certain(self):
        import dis

        from microlambda_rt.analysis import code_info

        def plain(f, x):
            return f(x, 2)

        def branchy(f, g, c, x):
            return (f if c else g)(x)

        def subscript(f, a, x):
            return (f, a)[1](x)  # the slot holds `a`: BUILD_TUPLE and BINARY_SUBSCR wrote it

        def unpacked(pair, x):
            f, a = pair
            return f(x)

        def swapped(f, g, x):
            f, g = g, f  # SWAP below the slot's depth happens before the push: still the LOAD_FAST of f
            return f(x)

        def attribute(f, x):
            return f.real(x)

        for fn, want in ((plain, "LOAD_FAST"), (branchy, None), (subscript, None), (unpacked, "LOAD_FAST"),
                         (swapped, "LOAD_FAST"), (attribute, "LOAD_METHOD")):
            info = code_info(fn.__code__)
            call = next(i for i in info.ops if dis.opname[i.op] == "CALL")
            slot = info.depth_before(call.opu) - call.arg - 1
            got = info.pushed_by(call.opu, slot)
            self.assertEqual(got and dis.opname[got.op], want, fn.__name__)
            if got is not None and dis.opname[got.op] == "LOAD_FAST":
                self.assertEqual(fn.__code__.co_varnames[got.arg], "f")
