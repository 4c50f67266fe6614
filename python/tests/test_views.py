"""Live views (``microlambda_rt.views``): a view pickled with its base must come back as a view of the restored
base, never as a copy of what it showed; where that cannot be done exactly, pickling is refused."""

import collections
import io
import os
import pickle
import re
import tempfile
import unittest

import cloudpickle

from microlambda_rt.views import _LIVE, _address_reader, _reduce_ndarray

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is pinned in python/requirements.txt
    np = None


class _ViewPickler(cloudpickle.Pickler):
    """The live-view part of the runtime's pickler (cloudpickle saves types.MappingProxyType by value)."""

    def reducer_override(self, obj):
        live = _LIVE.get(type(obj))
        if live is not None:
            return live(obj)
        if np is not None and isinstance(obj, np.ndarray):
            return _reduce_ndarray(obj, np)
        return super().reducer_override(obj)


def round_trip(obj):
    buf = io.BytesIO()
    _ViewPickler(buf, protocol=5).dump(obj)
    return pickle.loads(buf.getvalue())


class DictViews(unittest.TestCase):
    def test_views_follow_the_restored_dict(self):
        d = {"a": 1}
        for kind in ("keys", "values", "items"):
            d2, v2 = round_trip((d, getattr(d, kind)()))
            d2["b"] = 2
            self.assertEqual(len(v2), 2, kind)
            self.assertIs(type(v2), type(getattr(d, kind)()))

    def test_mappingproxy_follows_the_restored_dict(self):
        d = {"a": 1}
        d2, p2 = round_trip((d, type(str.__dict__)(d)))
        d2["a"] = 5
        self.assertEqual(p2["a"], 5)

    def test_iterators_resume_where_they_were(self):
        d = {k: k * 10 for k in range(6)}
        for make in (lambda: iter(d), lambda: iter(d.values()), lambda: iter(d.items()), lambda: reversed(d.keys())):
            it = make()
            next(it)
            next(it)
            d2, it2 = round_trip((d, it))
            self.assertEqual(list(it2), list(it))

    def test_an_iterator_whose_dict_changed_size_raises_as_it_would_have(self):
        # networkx's max-flow keeps an iterator over each node's edges (CurrentEdge), then removes edges.
        for kind, rev in (("keys", False), ("values", False), ("items", False), ("keys", True)):
            d = {k: k * 10 for k in range(6)}
            view = getattr(d, kind)()
            it = reversed(view) if rev else iter(view)
            next(it)
            del d[3]
            d2, it2 = round_trip((d, it))
            self.assertEqual(d2, d)
            self.assertIs(type(it2), type(it))
            for i in (it, it2):
                for _ in range(2):  # and it keeps raising
                    with self.assertRaisesRegex(RuntimeError, "changed size during iteration"):
                        next(i)

    def test_ordered_dict_iterators_resume_where_they_were(self):
        od = collections.OrderedDict((k, str(k)) for k in range(5))
        for make in (lambda: iter(od), lambda: iter(od.values()), lambda: iter(od.items()), lambda: reversed(od)):
            it = make()
            next(it)
            _, it2 = round_trip((od, it))
            self.assertEqual(list(it2), list(it))

    def test_ordered_dict_iterator_of_unknown_kind_is_refused(self):
        od = collections.OrderedDict((k, k) for k in ("x", "y", "z"))  # keys are their values: kind cannot be told
        it = iter(od.values())
        next(it)
        with self.assertRaises(TypeError):
            round_trip((od, it))


class Buffers(unittest.TestCase):
    def test_memoryview_writes_reach_the_restored_base(self):
        b = bytearray(b"abcd")
        b2, m2 = round_trip((b, memoryview(b).cast("B", (2, 2))))
        m2[0, 0] = ord("z")
        self.assertEqual(b2, bytearray(b"zbcd"))
        self.assertEqual(m2.shape, (2, 2))

    def test_memoryview_of_part_is_refused(self):
        with self.assertRaises(TypeError):
            round_trip(memoryview(bytearray(b"abcd"))[1:])

    def test_match_is_found_again(self):
        m = re.compile(r"(\d+)-(\w+)").search("xx 12-ab 34-cd", 5)
        m2 = round_trip(m)
        self.assertEqual((m2.span(), m2.groups(), m2.pos), (m.span(), m.groups(), m.pos))

    @unittest.skipIf(np is None, "numpy not installed")
    def test_numpy_view_writes_reach_the_restored_owner(self):
        a = np.arange(12, dtype=np.int64).reshape(3, 4)
        row, col = a[1], a[:, 2]
        a2, row2, col2 = round_trip((a, row, col))
        row2[2] = -1
        self.assertEqual(col2[1], -1)
        self.assertEqual(a2[1, 2], -1)
        self.assertFalse(np.shares_memory(a2, a))

    @unittest.skipIf(np is None, "numpy not installed")
    def test_numpy_views_into_owners_in_any_axis_order_are_taken_again(self):
        # ufunc results keep their input's axis order: an owner that is neither C- nor F-ordered (loadgen's
        # face job: conv_relu_pool's max over a transposed product), and a Fortran-ordered one.
        for owner in (np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2).copy(order="K"), np.asfortranarray(np.ones((3, 4)))):
            view = owner[1:, ::2]
            owner2, view2 = round_trip((owner, view))
            self.assertEqual(owner2.strides, owner.strides)
            np.testing.assert_array_equal(view2, view)
            view2[0, 0] = -7
            self.assertEqual(owner2[1, 0, 0] if owner2.ndim == 3 else owner2[1, 0], -7)

    @unittest.skipIf(np is None, "numpy not installed")
    def test_numpy_array_owning_its_memory_takes_numpys_path(self):
        self.assertIs(_reduce_ndarray(np.zeros(3), np), NotImplemented)

    @unittest.skipIf(np is None, "numpy not installed")
    def test_a_views_data_address_is_read_in_place_as_numpy_reports_it(self):
        # The offset a view is taken again at comes from the data addresses of the view and its owner, read from
        # the array object (`_address_reader`): a wrong reading would restore views at the wrong place.
        whole = np.arange(60.0).reshape(3, 4, 5)
        arrays = (whole, whole[1:, 2:, ::2], whole[:, ::-1], whole.T, whole[2, 3], whole.ravel()[7:],
                  np.asfortranarray(whole)[1], np.arange(10, dtype=np.int8)[3:], np.zeros(0))
        read = _address_reader(np)
        for a in arrays:
            self.assertEqual(read(a), a.__array_interface__["data"][0])

    @unittest.skipIf(np is None, "numpy not installed")
    def test_many_views_at_every_offset_come_back_at_theirs(self):
        owner = np.arange(40.0).reshape(8, 5)
        views = [owner[i, j:] for i in range(8) for j in range(5)] + [owner[::-1, 2], owner.T[1:, 3:]]
        back = round_trip((owner, views))
        for v, v2 in zip(views, back[1]):
            np.testing.assert_array_equal(v2, v)
            self.assertEqual(v2.strides, v.strides)
            self.assertTrue(np.shares_memory(v2, back[0]))


@unittest.skipIf(np is None, "numpy not installed")
class NumpyRecords(unittest.TestCase):
    """Through the job's pickler: a record of a structured array is a view of it."""

    def test_a_record_written_through_after_the_restore_writes_into_the_restored_array(self):
        from .test_pickler import checkpoint
        from .helpers import fake_module
        from .test_pickler import JOB_SOURCE

        mod = fake_module("records_job", JOB_SOURCE)
        nodes = np.zeros((3, 4), dtype=[("count", "<u4"), ("value", "<f8"), ("is_leaf", "u1")])
        node, col = nodes[1, 2], nodes[:, 2]
        node["count"] = 5
        own = np.void(b"\x01\x02")  # owns its memory: numpy's own pickling
        _, (nodes2, node2, col2, own2) = checkpoint(mod, (nodes, node, col, own))
        node2["value"] = 1.5  # as `_fill_predictor_arrays` goes on filling a node after a restore
        self.assertEqual((nodes2[1, 2]["count"], nodes2[1, 2]["value"], col2[1]["value"]), (5, 1.5, 1.5))
        self.assertIs(node2.base, nodes2)
        self.assertEqual(own2.tobytes(), b"\x01\x02")
        ra = nodes.view(np.recarray)  # a recarray's records are np.record, views too
        _, (nodes3, rec3) = checkpoint(mod, (nodes, ra[0, 1]))
        rec3.count = 9
        self.assertEqual((type(rec3), nodes3[0, 1]["count"]), (np.record, 9))
        T = nodes.T  # any axis order
        _, (T2, rec2) = checkpoint(mod, (T, T[3, 0]))
        rec2["count"] = 8
        self.assertEqual(T2[3, 0]["count"], 8)


    def test_a_view_of_a_subclass_keeping_nothing_of_its_own_is_taken_again_as_that_class(self):
        ev = np.zeros(4, dtype=[("t", "<f8"), ("amount", "<f4")])
        m = np.arange(6.0).reshape(2, 3)
        ra, masked = ev[1:].view(np.recarray), np.ma.masked_array(m[0], mask=[0, 1, 0])
        ev2, ra2, m2, masked2 = round_trip((ev, ra, m, masked))
        ra2[0].amount = 2.5
        self.assertEqual((type(ra2), ev2[1]["amount"], ra2.dtype), (np.recarray, 2.5, ra.dtype))
        self.assertTrue(np.shares_memory(masked2, m2))
        self.assertEqual(masked2.mask.tolist(), [False, True, False])


class NumpySubclassViews(unittest.TestCase):
    """Views of ndarray subclasses with attributes of their own (masked arrays, `np.matrix`): the same view taken
    again as that class, with its __dict__ set back exactly; saved as copies before, so writes through the view
    after a restore no longer reached the base."""

    def test_a_masked_view_writes_through_to_its_base_and_its_mask_to_the_others(self):
        base = np.arange(10.0)
        ma = np.ma.masked_array(base, mask=[0, 1] * 5)
        mv = ma[2:6]
        base2, ma2, mv2 = round_trip((base, ma, mv))
        self.assertIs(type(mv2), np.ma.MaskedArray)
        mv2[0] = 100.0  # a data write reaches the masked array and the plain array under it
        mv2[1] = 7.0  # unmasks: the view's mask is a view of the masked array's
        self.assertEqual((base2[2], ma2[2], base2[3]), (100.0, 100.0, 7.0))
        self.assertEqual(ma2.mask.tolist(), [False, True, False, False] + [False, True] * 3)
        self.assertEqual(sorted(vars(mv2)), sorted(vars(mv)))
        self.assertIs(mv2._baseclass, np.ndarray)

    def test_a_masked_array_owning_its_memory_keeps_its_attributes_and_its_views(self):
        h = np.ma.masked_array([1.0, 2.0, 3.0, 4.0], mask=[0, 1, 0, 0], hard_mask=True, fill_value=-9.0)
        h.__dict__["_optinfo"]["note"] = "mine"
        v = h[1:]
        h2, v2 = round_trip((h, v))
        self.assertEqual((h2._hardmask, h2.fill_value, h2._optinfo), (True, -9.0, {"note": "mine"}))
        v2[0] = 50.0  # a hard mask keeps a masked item masked, and the data unchanged
        v2[1] = 60.0
        self.assertEqual(h2.data.tolist(), [1.0, 2.0, 60.0, 4.0])
        self.assertEqual(h2.mask.tolist(), [False, True, False, False])

    def test_an_owning_instance_with_nothing_in_its_dict_is_saved_whole_too(self):
        m = np.matrix([[1.0, 2.0]])  # owns its memory; its dict is set back as it is, even empty, where
        vars(m).clear()  # numpy's pickling, and `.view(np.matrix)`, give `_getitem` back (__array_finalize__)
        (m2,) = round_trip((m,))
        self.assertEqual((type(m2), vars(m2), m2.tolist()), (np.matrix, {}, [[1.0, 2.0]]))

    def test_a_matrix_view_writes_through_to_its_matrix(self):
        m = np.matrix(np.arange(12.0).reshape(3, 4))
        mt = m[1:, :2].T
        m2, mt2 = round_trip((m, mt))
        mt2[1, 0] = -1.0
        self.assertEqual((type(mt2), m2[1, 1], vars(mt2)), (np.matrix, -1.0, vars(mt)))

    def test_a_view_of_a_subclass_with_state_outside_its_dict_is_refused(self):
        class Slotted(np.ndarray):
            __slots__ = ("unit",)

        a = np.arange(4.0).view(Slotted)
        a.unit = "m"
        with self.assertRaises(TypeError):
            round_trip(a[1:])
        with tempfile.TemporaryDirectory() as d:  # a masked array over a memory-mapped file: no copy either
            mm = np.memmap(os.path.join(d, "f"), dtype="f8", mode="w+", shape=(4,))
            with self.assertRaises(TypeError):
                round_trip(np.ma.masked_array(mm, mask=[0, 1, 0, 0]))
            del mm


if __name__ == "__main__":
    unittest.main()
