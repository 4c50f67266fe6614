"""Unit tests of the pure parts of the runtime package, run from the source tree (``make test``).

The package takes the Rust helper module ``_mlrs`` from ``sys.modules``, where the worker registers it; these
tests need none of it, so an empty stand-in is registered before the package is imported.
"""

import sys
import types

sys.modules.setdefault("_mlrs", types.ModuleType("_mlrs"))
