"""The tests that do not need float64 references also run with float64 off.

tests/conftest.py turns ``jax_enable_x64`` on for the NumPy float64 reference comparisons.
Users run JAX's default (x64 off), where Python floats become float32 and the optimizers'
``float64`` paths are absent, so the dtype, property, composition, compatibility and
diagnostics tests run a second time here, in a subprocess with ``ADAMOD_OPTAX_TEST_X64=0``.
The run must pass with nothing skipped.
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = [
    "tests/test_common.py",
    "tests/test_properties.py",
    "tests/test_composition.py",
    "tests/test_optax_compat.py",
    "tests/test_diagnostics.py",
    "tests/test_inject_hyperparams.py",
]


def test_x64_off_suite_passes_without_skips():
    env = {**os.environ, "ADAMOD_OPTAX_TEST_X64": "0", "JAX_ENABLE_X64": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "-o", "addopts=", *FILES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary, tail
    assert "skipped" not in summary and "deselected" not in summary, summary
    import jax  # the parent session itself still has x64 on
    assert jax.config.jax_enable_x64
