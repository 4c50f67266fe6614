"""Loading a job's module: a module zygote's child takes the module its zygote executed (the identical source
only, its top level not run again), and a top level that changes a global RNG makes that state the job's own,
saved in every checkpoint (a restore must not depend on the top level running again where it is restored)."""

import linecache
import random
import sys
import unittest

from microlambda_rt import identity, job, state

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


class WarmUpForgotten(unittest.TestCase):
    """A fresh child's warm-up run (`warm_child` in src/py/mod.rs) loads, starts and finishes a module of the
    runtime's own, then forgets it: the job after it finds no trace of it."""

    def test_a_forgotten_module_leaves_no_trace_for_the_job(self):
        before = (set(sys.modules), set(state._JOB_MODULES), dict(identity._FILE_MODULE), set(linecache.cache),
                  state.TOP_RNG, random.getstate())
        mod = job.load_module("__microlambda_warm__", "<microlambda warm-up>", "def main(x):\n    return x\n")
        f, arg = job.start(mod, "main", "1")
        self.assertEqual(job.encode_output(f(arg)), "1")
        job.finish()
        job.forget_module("__microlambda_warm__", "<microlambda warm-up>")
        after = (set(sys.modules), set(state._JOB_MODULES), dict(identity._FILE_MODULE), set(linecache.cache),
                 state.TOP_RNG, random.getstate())
        self.assertEqual(after, before)
        self.assertNotIn("__microlambda_warm__", identity._MODULE_INDEX)
        self.assertIsNone(state.JOB)
