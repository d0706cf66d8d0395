"""Replays the golden trajectories with the package (shared by the tests and benchmarks.accuracy).

``python -m tests.golden.compare`` prints the measured deviations as a table.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax
from tests.golden import problem

GOLDEN_DIR = os.path.dirname(os.path.abspath(__file__))
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
    jax.config.update("jax_enable_x64", True)
    main()
