"""Test configuration: float64 on, so references can be compared at 1e-9.

``ADAMOD_OPTAX_TEST_X64=0`` runs with JAX's default configuration instead (float64 off),
the one users run; tests/repository/test_x64_off.py runs the dtype, property,
composition, compatibility and diagnostics tests that way in a subprocess.
"""

import os

import jax
import pytest

X64 = os.environ.get("ADAMOD_OPTAX_TEST_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64)

SMOKE = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- the fast tier: python -m pytest -m "not slow" ---------------------------
# Slow: over ~5 s on 2 cores, or a subprocess / several processes. Single tests
# carry @pytest.mark.slow; these modules are slow as a whole (several processes,
# a second pytest run with x64 off, simulated devices in a subprocess, the
# notebooks, benchmark probes run as scripts):
SLOW_MODULES = (
    "tests/test_multiprocess.py",
    "tests/test_sharding.py",
    "tests/repository/test_notebooks.py",
    "tests/repository/test_x64_off.py",
    "tests/repository/test_benchmark_probes.py",
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: over ~5 s or in other processes (docs build, notebooks, demo, x64-off run, "
        "multi-process); the fast tier is python -m pytest -m 'not slow'",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("::", 1)[0] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# --- hypothesis profiles (tests/test_properties.py) -------------------------
# "ci" (the default, CI or not): 20 examples per test, no deadline (JAX compiles
# each example's step), derandomized so every run sees the same examples. Each
# example compiles a step (about a second on 2 busy cores), so 20 keep the file
# at about two minutes there (one minute of CPU time). "dev": a larger random
# search: HYPOTHESIS_PROFILE=dev python -m pytest ...
try:
    from hypothesis import HealthCheck, Phase, settings
except ImportError:  # hypothesis is a test extra; its tests skip without it
    pass
else:
    _SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci", max_examples=20, deadline=None, derandomize=True, database=None,
        suppress_health_check=_SLOW_OK,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded CI time
    )
    settings.register_profile(
        "dev", max_examples=150, deadline=None, suppress_health_check=_SLOW_OK,
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
