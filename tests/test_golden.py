"""Golden trajectories from the PyTorch releases, replayed without torch.

``tests/golden/*.npz`` were written by ``tests/golden/generate.py`` from
torch-optimizer 0.3.0 (``AdaMod``, ``DiffGrad``) and adabound 0.0.5
(``AdaBound``, ``amsbound=False/True``): 1000 float64 steps per configuration
on the closed-loop problem of ``tests/golden/problem.py``, with constant and
scheduled learning rates and the releases' own weight decay. Here the package
runs the same problem (jitted update + ``optax.apply_updates``, gradients from
the same NumPy function of the current params and step) and must stay within
1e-9 of the release at every stored snapshot, relative to how far the
parameters moved::

  max|theta_pkg - theta_ref| / max|theta_ref - theta_0|   (per leaf)

Every optimizer with golden data must be in ``adamod_optax``: a missing one fails.

``python -m tests.golden.compare`` prints the measured deviations as a table.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import adamod_optax  # noqa: F401
from benchmarks.numpy_reference import AdaModReleased
from tests.golden import problem
from tests.golden.compare import (
    CASES,
    GOLDEN_DIR,
    OPTIMIZERS,
    RELEASES,
    TOL,
    case,
    load,
    measure,
    relative_deviation,
)


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_matches_release(name, config, record_property):
    result = measure(name, config)
    assert result is not None, (
        f"adamod_optax.{name} is missing; its golden data ({RELEASES[name]}) is in tests/golden"
    )
    worst, per_leaf = result
    record_property("max_rel_dev", worst)
    print(f"{name}/{config}: max relative deviation {worst:.2e} "
          + " ".join(f"{k}={v:.1e}" for k, v in per_leaf.items()))
    assert worst <= TOL, f"{name}/{config} deviates from {RELEASES[name]}: {per_leaf}"


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_data_matches_problem(name, config):
    """The stored data and problem.py describe the same runs."""
    c = case(name, config)
    want = problem.configs()[name][config]
    # Both are NumPy float64 arithmetic, which differs in the last bits between NumPy
    # releases (the declared floor, 1.24, and 2.x); the runs use the stored table.
    np.testing.assert_allclose(c["lr_table"], want["lr_table"], rtol=1e-12, atol=0)
    assert c["config"]["schedule"] == want["schedule"]
    assert c["config"]["hyper"] == want["hyper"]
    # theta_0 is cos/sin of a grid: NumPy's libm differs by an ulp between releases.
    for k, v in problem.initial_params().items():
        np.testing.assert_array_max_ulp(c["params0"][k], v, maxulp=1)
    # The closed-loop gradient function has not drifted from the one that
    # produced the data (evaluated at the release's own snapshots).
    for i, s in enumerate(c["steps"]):
        g = problem.grad({k: c["snapshots"][k][i] for k in problem.LEAVES}, s)
        for k in problem.LEAVES:
            np.testing.assert_allclose(g[k], c["grads"][k][i], rtol=1e-12, atol=1e-15)
    # The trajectory moved enough for the relative measure to mean something.
    for k in problem.LEAVES:
        assert np.max(np.abs(c["snapshots"][k][-1] - c["params0"][k])) > 0.05


def test_metadata_and_size():
    total = 0
    for name in OPTIMIZERS:
        meta = load(name)["meta"]
        assert meta["optimizer"] == name and meta["n_steps"] == problem.N_STEPS
        want = {"adabound": "0.0.5"} if name in ("adabound", "amsbound") else {
            "torch-optimizer": "0.3.0"}
        for dist, version in want.items():
            assert meta["versions"][dist] == version
        assert meta["versions"]["torch"].startswith("2.13.0")
        total += os.path.getsize(os.path.join(GOLDEN_DIR, f"{name}.npz"))
    assert total < 500_000, total


@pytest.mark.parametrize("config", list(problem.configs()["adamod"]))
def test_adamod_release_matches_numpy_reference(config):
    """torch-optimizer's AdaMod equals benchmarks/numpy_reference.py's AdaModReleased."""
    c = case("adamod", config)
    h = c["config"]["hyper"]
    ref = AdaModReleased(b1=h.get("b1", 0.9), b2=h.get("b2", 0.999), b3=h.get("b3", 0.999),
                         eps=h.get("eps", 1e-8))
    leaves = h.get("decay_leaves")
    mask = None if leaves is None else {k: k in leaves for k in problem.LEAVES}
    params = {k: v.copy() for k, v in c["params0"].items()}
    worst = 0.0
    for k in range(problem.N_STEPS):
        params = ref.step(params, problem.grad(params, k), float(c["lr_table"][k]),
                          weight_decay=h.get("weight_decay", 0.0), decay_mask=mask)
        if k + 1 in c["steps"]:
            i = c["steps"].index(k + 1)
            snap = {n: c["snapshots"][n][i] for n in problem.LEAVES}
            worst = max(worst, *relative_deviation(c["params0"], snap, params).values())
    print(f"adamod/{config}: torch-optimizer vs AdaModReleased {worst:.2e}")
    assert worst <= 1e-12
