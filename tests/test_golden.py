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

Optimizers that are not in ``adamod_optax`` yet are skipped with a reason.

``python tests/test_golden.py`` prints the measured deviations as a table.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

if __name__ == "__main__":  # standalone: the setup conftest.py does under pytest
    jax.config.update("jax_enable_x64", True)
    _TESTS = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_TESTS, os.path.dirname(_TESTS)]

from golden import problem

import adamod_optax

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
OPTIMIZERS = ("adamod", "adabound", "amsbound", "diffgrad")
RELEASES = {
    "adamod": "torch-optimizer 0.3.0 AdaMod",
    "adabound": "adabound 0.0.5 AdaBound",
    "amsbound": "adabound 0.0.5 AdaBound(amsbound=True)",
    "diffgrad": "torch-optimizer 0.3.0 DiffGrad",
}
TOL = 1e-9
CASES = [(name, c) for name in OPTIMIZERS for c in problem.configs()[name]]

_CACHE: dict[str, dict] = {}


def load(name: str) -> dict:
    """``<name>.npz`` as a dict of arrays (JSON entries decoded)."""
    if name not in _CACHE:
        with np.load(os.path.join(GOLDEN_DIR, f"{name}.npz"), allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        for k in list(data):
            if k == "meta" or k.endswith("|config"):
                data[k] = json.loads(str(data[k]))
        _CACHE[name] = data
    return _CACHE[name]


def case(name: str, config: str) -> dict:
    data = load(name)
    return {
        "config": data[f"{config}|config"],
        "lr_table": data[f"{config}|lr_table"],
        "steps": [int(s) for s in data[f"{config}|snapshot_steps"]],
        "params0": {k: data[f"{config}|params0|{k}"] for k in problem.LEAVES},
        "snapshots": {k: data[f"{config}|snapshots|{k}"] for k in problem.LEAVES},
        "grads": {k: data[f"{config}|grads_at_snapshots|{k}"] for k in problem.LEAVES},
    }


def package_optimizer(name: str, config: dict, lr_table: np.ndarray):
    """The package's optimizer for a golden config (None if not available)."""
    factory = getattr(adamod_optax, name, None)
    if factory is None:
        return None
    h = config["hyper"]
    if config["schedule"] == "constant":
        assert np.all(lr_table == lr_table[0])
        learning_rate = float(lr_table[0])
    else:
        table = jnp.asarray(lr_table, dtype=jnp.float64)

        def learning_rate(count):
            return table[count]

    kwargs = {k: h[k] for k in ("b1", "b2", "eps", "weight_decay") if k in h}
    if name == "adamod":
        if "b3" in h:
            kwargs["b3"] = h["b3"]
        if h.get("decay_leaves") is not None:
            kwargs["mask"] = {k: k in h["decay_leaves"] for k in problem.LEAVES}
    elif name in ("adabound", "amsbound"):
        kwargs.update({k: h[k] for k in ("final_lr", "gamma") if k in h})
    # The releases' defaults (b1 0.9, b2 0.999, b3 0.999, eps 1e-8, final_lr 0.1,
    # gamma 1e-3; coupled L2 for AdaBound/DiffGrad) are left to the package's.
    return factory(learning_rate, **kwargs)


def relative_deviation(params0: dict, ref: dict, got: dict) -> dict[str, float]:
    """Per leaf: max|got - ref| / max|ref - params0|."""
    return {
        k: float(np.max(np.abs(got[k] - ref[k])) / np.max(np.abs(ref[k] - params0[k])))
        for k in problem.LEAVES
    }


def replay(tx, params0: dict, steps: list[int]) -> dict[int, dict]:
    """Run ``tx`` jitted on the closed-loop problem; params at the given steps."""

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = {k: jnp.asarray(v) for k, v in params0.items()}
    state = tx.init(params)
    wanted, out = set(steps), {}
    for k in range(max(steps)):
        grads = problem.grad(params, k)
        params, state = step(params, state, grads)
        if k + 1 in wanted:
            out[k + 1] = {n: np.asarray(v) for n, v in params.items()}
    return out


def measure(name: str, config: str) -> tuple[float, dict] | None:
    """(max relative deviation over snapshots and leaves, per-leaf maxima)."""
    c = case(name, config)
    tx = package_optimizer(name, c["config"], c["lr_table"])
    if tx is None:
        return None
    got = replay(tx, c["params0"], c["steps"])
    per_leaf = dict.fromkeys(problem.LEAVES, 0.0)
    for i, s in enumerate(c["steps"]):
        ref = {k: c["snapshots"][k][i] for k in problem.LEAVES}
        for k, d in relative_deviation(c["params0"], ref, got[s]).items():
            per_leaf[k] = max(per_leaf[k], d)
    return max(per_leaf.values()), per_leaf


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_matches_release(name, config, record_property):
    result = measure(name, config)
    if result is None:
        pytest.skip(
            f"adamod_optax.{name} is not in this build yet; its golden data "
            f"({RELEASES[name]}) is ready and this test runs once it exists"
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
    np.testing.assert_array_equal(c["lr_table"], want["lr_table"])
    assert c["config"]["schedule"] == want["schedule"]
    assert c["config"]["hyper"] == want["hyper"]
    for k, v in problem.initial_params().items():
        np.testing.assert_array_equal(c["params0"][k], v)
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
    """torch-optimizer's AdaMod equals tests/reference.py's AdaModReleased."""
    from reference import AdaModReleased

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


def main() -> None:
    print("| optimizer | release | config | max rel. deviation | w | b | s |")
    print("|---|---|---|---|---|---|---|")
    for name, config in CASES:
        result = measure(name, config)
        if result is None:
            print(f"| {name} | {RELEASES[name]} | {config} | not in this build | | | |")
            continue
        worst, per_leaf = result
        leaves = " | ".join(f"{per_leaf[k]:.1e}" for k in problem.LEAVES)
        print(f"| {name} | {RELEASES[name]} | {config} | {worst:.1e} | {leaves} |")


if __name__ == "__main__":
    main()
