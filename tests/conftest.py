"""Test configuration: float64 on, so references can be compared at 1e-9."""

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

# Make `import reference` / `import optimizers` work from any test module.
sys.path.insert(0, os.path.dirname(__file__))

SMOKE = os.environ.get("CI", "").lower() in ("1", "true", "yes")
