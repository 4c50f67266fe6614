"""Loading a job's module: a module zygote's child takes the module its zygote executed (the identical source
only, its top level not run again), and a top level that changes a global RNG makes that state the job's own,
saved in every checkpoint (a restore must not depend on the top level running again where it is restored)."""

import random
import sys
import unittest

from microlambda_rt import job, state

SOURCE = "import random\nRUNS = []\nRUNS.append(1)\nrandom.seed(5)\n\ndef main(x):\n    return random.random()\n"


class ModuleZygoteLoad(unittest.TestCase):
    def setUp(self):
        self.saved = (state.PRELOADED, state.TOP_RNG, random.getstate())

    def tearDown(self):
        state.PRELOADED, state.TOP_RNG, st = self.saved
        random.setstate(st)
        for name in ("mlfn_test_zz_a", "mlfn_test_zz_b"):
            sys.modules.pop(name, None)
            state._JOB_MODULES.discard(name)

    def test_a_preloaded_module_is_taken_as_it_is_and_no_other_is_loaded(self):
        mod = job.preload_module("mlfn_test_zz_a", "<a>", SOURCE)
        self.assertEqual(mod.RUNS, [1])
        again = job.load_module("mlfn_test_zz_a", "<a>", SOURCE)
        self.assertIs(again, mod)
        self.assertEqual(mod.RUNS, [1], "the top level ran again")
        with self.assertRaises(ImportError):
            job.load_module("mlfn_test_zz_a", "<a>", SOURCE + "# another source\n")
        with self.assertRaises(ImportError):
            job.load_module("mlfn_test_zz_b", "<b>", SOURCE)
        self.assertNotIn("mlfn_test_zz_b", sys.modules)

    def test_a_top_level_that_seeds_the_rng_makes_its_state_the_jobs_own(self):
        mod = job.load_module("mlfn_test_zz_a", "<a>", SOURCE)
        self.assertEqual(state.TOP_RNG[0], True)
        job.start(mod, "main", "null")
        try:
            self.assertTrue(state.JOB.rng_owned, "the seeded state would not be saved while the job has not drawn")
        finally:
            job.finish()
        quiet = job.load_module("mlfn_test_zz_b", "<b>", "def main(x):\n    return x\n")
        self.assertEqual(state.TOP_RNG[0], False)
        job.start(quiet, "main", "null")
        try:
            self.assertFalse(state.JOB.rng_owned)
        finally:
            job.finish()


if __name__ == "__main__":
    unittest.main()
