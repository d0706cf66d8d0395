"""Re-export of the harness that the tests share with the benchmarks.

The optimizer registry (``FAMILY``), the problems and :func:`compare_with_reference` live in
:mod:`benchmarks.accuracy`, the long runs in :mod:`benchmarks.robustness` and the NumPy float64
references in :mod:`benchmarks.numpy_reference`: benchmarks import the library only, tests
import benchmarks, never the other way round. Kept for test modules that still import
``tests.helpers``; new code imports from those modules.
"""

from benchmarks.accuracy import (  # noqa: F401
    ADAMOD_CONFIGS,
    FAMILY,
    FAMILY_CONFIGS,
    FAMILY_OPTIMIZERS,
    FINAL,
    GAMMA,
    LINEAR_DECAY,
    PEAK,
    TOL,
    TREES,
    WARMUP_DECAY,
    closed_loop_grad,
    compare_with_reference,
    decay_matrices,
    flat,
    make_family,
    run_adamod,
    run_family,
    unflat,
)
from benchmarks.robustness import LONG_STEPS, long_grads, scan_run  # noqa: F401
