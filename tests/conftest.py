"""Test configuration: float64 on, so references can be compared at 1e-9.

``ADAMOD_OPTAX_TEST_X64=0`` runs with JAX's default configuration instead (float64 off),
the one users run; tests/repository/test_x64_off.py runs the dtype, property,
composition, compatibility and diagnostics tests that way in a subprocess.
"""

import os

import jax

X64 = os.environ.get("ADAMOD_OPTAX_TEST_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64)

SMOKE = os.environ.get("CI", "").lower() in ("1", "true", "yes")

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
