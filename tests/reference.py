"""Re-export of :mod:`benchmarks.numpy_reference`, where the NumPy float64 references live.

Kept for modules that still import ``tests.reference`` (and ``tests/golden/generate.py``,
which imports ``reference`` with ``tests/`` on its path: run it from the repository root with
``PYTHONPATH=.``). New code imports ``benchmarks.numpy_reference``.
"""

from benchmarks.numpy_reference import (  # noqa: F401
    AdaBound,
    AdaBoundLowerAdaModUpper,
    AdaModPaper,
    AdaModReleased,
    DiffGrad,
    DiffMod,
)
