"""Sharded training through JAX's SPMD partitioner, on 8 simulated CPU devices.

The checks live in ``sharding_cases.py``: the optimizer state must be sharded
like the params (FSDP-style and tensor-parallel layouts) after an eager
``tx.init`` and after a jitted init whose ``out_shardings`` come from
``optax.tree.map_params``, and a sharded step must equal the single-device one.

The device count has to be fixed before JAX starts its backend, and the rest of
the suite should keep its one default device, so this test runs those checks
in a fresh interpreter with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
on CPU (as CI does, with or without an accelerator on the machine).
"""

import os
import pathlib
import re
import subprocess
import sys

N_DEVICES = 8
CASES = pathlib.Path(__file__).resolve().parent / "sharding_cases.py"


def test_sharding_cases_on_8_simulated_cpu_devices():
    root = CASES.parent.parent
    env = dict(os.environ)
    env.update(
        {
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": env.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={N_DEVICES}",
            "PYTHONPATH": os.pathsep.join([str(root), env.get("PYTHONPATH", "")]),
        }
    )
    cmd = [sys.executable, "-m", "pytest", str(CASES), "-q", "-x", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    summary = proc.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 8, output[-8000:]
    assert "failed" not in summary and "error" not in summary, output[-8000:]
