"""The capture's bookkeeping around the job's collector (``microlambda_rt.capture``): the count of young
allocations its own churn leaves is put back, so the job's next allocation does not run a collection inside the
pause. The worker's helper that writes the count (``_mlrs.young_count``) is stood in for here."""

import gc
import importlib
import unittest
from unittest import mock

capture = importlib.import_module("microlambda_rt.capture")  # the package's `capture` is the function


class YoungCountPutBack(unittest.TestCase):
    def setUp(self):
        self.calls = []
        helper = mock.Mock(side_effect=lambda now, threshold, to: self.calls.append((now, threshold, to)) or to)
        patcher = mock.patch.object(capture._rs, "young_count", helper, create=True)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_the_count_a_capture_found_is_put_back_after_its_churn(self):
        was = gc.isenabled()
        gc.disable()
        try:
            young = gc.get_count()[0]
            churn = [(i, str(i)) for i in range(5000)]  # what reducers make: tuples, freed onto the free list
            del churn
            capture._count_back(young)
        finally:
            if was:
                gc.enable()
        self.assertEqual(len(self.calls), 1)
        now, threshold, to = self.calls[0]
        self.assertGreater(now, young)
        self.assertEqual((threshold, to), (gc.get_threshold()[0], young))

    def test_a_count_lower_than_the_capture_found_is_left_alone(self):
        young = gc.get_count()[0] + 10_000  # as if a collection had run since
        capture._count_back(young)
        self.assertEqual(self.calls, [])


if __name__ == "__main__":
    unittest.main()
