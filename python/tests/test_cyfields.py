"""Cython's typed memoryviews, memoryviews and arrays (``microlambda_rt.cyfields``) through the job-state
pickler, alone and as the fields Cython's own pickling of a cdef class saves: made again over the restored
arrays they viewed, so writes still reach every view; a Cython class with C state of its own is still refused."""

import importlib.util
import unittest

from .test_pickler import JobTest, checkpoint

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAS_PANDAS = importlib.util.find_spec("pandas") is not None


@unittest.skipUnless(HAS_SKLEARN, "scikit-learn is not installed")
class TypedMemoryviews(JobTest):
    def builder(self):
        import numpy as np
        from sklearn.ensemble._hist_gradient_boosting.histogram import HistogramBuilder

        rng = np.random.default_rng(0)
        binned = np.asfortranarray(rng.integers(0, 16, (200, 3)).astype(np.uint8))
        g = rng.normal(size=200).astype(np.float32)
        h = np.ones(200, dtype=np.float32)
        return HistogramBuilder(binned, 17, g, h, False, 1), binned, g

    def test_a_cdef_class_with_memoryview_fields_comes_back_viewing_the_restored_arrays(self):
        import numpy as np

        b, binned, g = self.builder()
        rows = np.arange(0, 200, 3, dtype=np.uint32)
        part = b.gradients[10:20]  # a typed memoryview held by a variable
        _, (b2, binned2, g2, part2) = checkpoint(self.mod, (b, binned, g, part))
        self.assertEqual([type(b2).__name__, b2.n_bins, b2.n_features], ["HistogramBuilder", 17, 3])
        self.assertIs(b2.X_binned.base.base, binned2)  # through the Cython memoryview its own pickling saved
        self.assertIs(b2.gradients.base.base, g2)
        self.assertEqual(memoryview(b2.X_binned).readonly, memoryview(b.X_binned).readonly)
        self.assertEqual(list(b2.ordered_gradients), list(b.ordered_gradients))  # a Cython array, copied
        self.assertEqual((type(part2).__qualname__, type(part2) is type(part)), ("_memoryviewslice", True))
        self.assertIs(part2.base, g2)
        self.assertEqual(list(part2), g[10:20].tolist())
        g2[12] = 7.5  # a write to the restored array shows through both views
        self.assertEqual((part2[2], b2.gradients[12]), (7.5, 7.5))
        g[12] = 7.5
        self.assertEqual(np.asarray(b2.compute_histograms_brute(rows)).tolist(),
                         np.asarray(b.compute_histograms_brute(rows)).tolist())

    def test_a_strided_slice_of_a_two_dimensional_view_keeps_its_place(self):
        b, binned, _ = self.builder()
        col = b.X_binned[5:50:3, 1]
        _, (binned2, col2) = checkpoint(self.mod, (binned, col))
        self.assertEqual((col2.shape, col2.strides, list(col2)), (col.shape, col.strides, list(col)))
        self.assertIs(col.base, binned)
        self.assertIs(col2.base, binned2)
        binned2[47, 1] = 99  # the last row it views
        self.assertEqual(col2[14], 99)

    @unittest.skipUnless(HAS_PANDAS, "pandas is not installed")
    def test_a_class_with_c_state_of_its_own_is_still_refused(self):
        from pandas._libs.hashtable import Int64HashTable

        table = Int64HashTable()
        table.set_item(3, 4)
        with self.assertRaises(TypeError):
            checkpoint(self.mod, [table])
