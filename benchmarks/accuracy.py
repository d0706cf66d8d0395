"""Measure how closely every optimizer reproduces its NumPy float64 reference.

The figures are quoted on the results page (docs/guides/results.md). Every optimizer runs
1000 float64 steps of a closed-loop problem beside its reference in
:mod:`benchmarks.numpy_reference` (several pytrees, constant and scheduled learning rates,
weight decay and masks), reported as max |theta_package - theta_reference| /
max |theta_reference - theta_0| (per leaf, worst case).

The comparison with the PyTorch releases' golden trajectories (``tests/golden/``) belongs to the
test suite: ``python -m tests.golden.compare`` prints that table.

This module also holds what the tests share with it: ``FAMILY`` (every optimizer at the
settings the tests use), the problems and :func:`compare_with_reference`. It imports the
library and :mod:`benchmarks.numpy_reference` only, and leaves ``jax_enable_x64`` alone until
:func:`main` runs.

Usage: ``python -m benchmarks.accuracy`` (about a minute on 2 CPU cores; ``--steps 50`` for a
smoke run). Prints Markdown.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from benchmarks.numpy_reference import (
    AdaBound,
    AdaModPaper,
    AdaModReleased,
    DiffGrad,
    DiffMod,
)

# --- the family at the settings the tests and measurements use ----------------------------------


class Entry:
    """An optimizer function with base keyword arguments, which a call's keywords override."""

    def __init__(self, fn, **base):
        self.fn, self.base = fn, base

    def __call__(self, **kw):
        return self.fn(**{**self.base, **kw})


FAMILY = {
    "adamod": Entry(ao.adamod, learning_rate=1e-2),
    "adamod_paper": Entry(ao.adamod, learning_rate=1e-2, algorithm="paper"),
    # final_lr is an absolute SGD learning rate (it does not follow `learning_rate` unless
    # base_lr is given); 1e-3 keeps the SGD end phase stable on Rosenbrock (curvature ~1000).
    "adabound": Entry(ao.adabound, learning_rate=1e-2, final_lr=1e-3),
    "amsbound": Entry(ao.amsbound, learning_rate=1e-2, final_lr=1e-3),
    "diffgrad": Entry(ao.diffgrad, learning_rate=1e-2),
    "diffmod": Entry(ao.diffmod, learning_rate=1e-2),
}


# --- problems: several pytrees and a closed-loop gradient ------------------------------------

TOL = 1e-9  # the tests' bound on the deviation, relative to the parameters' movement


def _trees():
    rng = np.random.default_rng(42)
    return {
        "dense": {"w": rng.normal(size=(5, 4)), "b": rng.normal(size=(4,))},
        "nested": {
            "layer": {"kernel": rng.normal(size=(3, 2, 2)), "scale": np.ones(())},
            "emb": rng.normal(size=(6, 3)) * 1e-2,
        },
        "single": {"x": rng.normal(size=(7,))},
    }


TREES = _trees()


def flat(tree):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}


def closed_loop_grad(flat_params, k):
    """Deterministic closed-loop gradient: a pull towards 0.3, a sin 'noise', some zeros."""
    out = {}
    for j, (name, p) in enumerate(sorted(flat_params.items())):
        idx = np.arange(p.size, dtype=np.float64).reshape(p.shape)
        noise = np.sin(0.37 * k + 1.3 * idx + j)
        g = 0.5 * (p - 0.3) + noise * (10.0 ** (j % 3 - 1))
        g = np.where((idx + k) % 7 == 0, 0.0, g)  # elements with no gradient this step
        out[name] = g
    return out


def unflat(flat, like):
    paths = jax.tree_util.tree_leaves_with_path(like)
    leaves = [jnp.asarray(flat[jax.tree_util.keystr(k)]) for k, _ in paths]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


WARMUP_DECAY = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 50, 1000, 1e-4)
LINEAR_DECAY = optax.linear_schedule(3e-3, 1e-4, 800)


def compare_with_reference(
    tx,
    ref,
    lr,
    *,
    tree_name="dense",
    steps=1000,
    jit=True,
    weight_decay=0.0,
    mask=None,
    ref_kw=None,
):
    """Run ``tx`` and the NumPy reference ``ref`` side by side on the closed-loop problem.

    The reference is fed the learning rate the optimizer saw (a schedule evaluated as the step
    evaluates it, jitted or not). Returns (max deviation relative to the parameters' movement,
    final params, final reference params).
    """
    params0 = jax.tree.map(jnp.asarray, TREES[tree_name])

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    step = jax.jit(step) if jit else step
    sched = (jax.jit(lr) if jit else lr) if callable(lr) else None
    flat_mask = None
    if mask is not None:
        m = mask(params0) if callable(mask) else mask
        flat_mask = {k: bool(v) for k, v in flat(m).items()}
    params, state = params0, tx.init(params0)
    ref_params = flat(params0)
    for k in range(steps):
        g = closed_loop_grad(ref_params, k)
        lr_k = float(sched(jnp.int32(k))) if sched else lr
        ref_params = ref.step(ref_params, g, lr_k, weight_decay, flat_mask, **(ref_kw or {}))
        params, state = step(params, state, unflat(g, params0))
    dev = 0.0
    for name, p in flat(params).items():
        moved = np.max(np.abs(ref_params[name] - flat(params0)[name]))
        assert moved > 0, name
        dev = max(dev, np.max(np.abs(p - ref_params[name])) / moved)
    return dev, params, ref_params


def run_adamod(
    tree_name, lr, *, steps, jit, weight_decay=0.0, mask=None, algorithm="released", b3=0.999, **kw
):
    """AdaMod against its reference; the max relative deviation."""
    tx = ao.adamod(lr, b3=b3, weight_decay=weight_decay, mask=mask, algorithm=algorithm, **kw)
    ref = (AdaModReleased if algorithm == "released" else AdaModPaper)(b3=b3)
    return compare_with_reference(
        tx, ref, lr, tree_name=tree_name, steps=steps, jit=jit, weight_decay=weight_decay, mask=mask
    )[0]


def decay_matrices(params):
    return jax.tree.map(lambda x: x.ndim >= 2, params)


ADAMOD_CONFIGS = {  # (a weight-decay schedule is tested in test_weight_decay_schedule)
    "constant": dict(lr=1e-3),
    "constant_large_lr_b3_099": dict(lr=3e-2, b3=0.99),
    "warmup_cosine": dict(lr=WARMUP_DECAY),
    "linear_decay_wd": dict(lr=LINEAR_DECAY, weight_decay=1e-2),
    "warmup_wd_mask_fn": dict(lr=WARMUP_DECAY, weight_decay=5e-2, mask=decay_matrices),
}


# --- the family against its references --------------------------------------------------------

# Bounds that bite within 1000 steps on these problems (rates span ~1e-4..1e-2 at lr 1e-3):
# at t = 1000 they are [0.91, 1.1] * final, so some rates are raised and others cut.
FINAL, GAMMA = 2e-3, 1e-2
PEAK = 1e-2  # WARMUP_DECAY's peak, the base_lr a warmup from 0 needs


def make_family(name, lr, *, base_lr=None, weight_decay=0.0, mask=None, mode="coupled", version=0):
    """(optimizer, a function base_lr -> reference, extra keyword arguments of its step).

    The caller builds the reference with the base learning rate (AdaBound's ``base_lr``; the
    other references ignore it).
    """
    if name in ("adabound", "amsbound"):
        fn = ao.adabound if name == "adabound" else ao.amsbound
        tx = fn(
            lr,
            final_lr=FINAL,
            gamma=GAMMA,
            weight_decay=weight_decay,
            mask=mask,
            weight_decay_mode=mode,
            base_lr=base_lr,
        )
        return (
            tx,
            lambda base: AdaBound(base, FINAL, GAMMA, amsbound=name == "amsbound"),
            {"decoupled": mode == "decoupled"},
        )
    if name == "diffgrad":
        tx = ao.diffgrad(
            lr,
            weight_decay=weight_decay,
            mask=mask,
            weight_decay_mode=mode,
            friction_version=version,
        )
        return tx, lambda base: DiffGrad(version=version), {"decoupled": mode == "decoupled"}
    assert name == "diffmod" and mode == "decoupled"
    tx = ao.diffmod(lr, b3=0.99, weight_decay=weight_decay, mask=mask, friction_version=version)
    return tx, lambda base: DiffMod(b3=0.99, version=version), {}


def run_family(
    name,
    lr,
    *,
    steps=1000,
    jit=True,
    tree="nested",
    base_lr=None,
    weight_decay=0.0,
    mask=None,
    mode=None,
    version=0,
    return_params=False,
):
    """Package and reference side by side; max deviation relative to the parameters' movement."""
    mode = mode or ("decoupled" if name == "diffmod" else "coupled")
    tx, make_ref, ref_kw = make_family(
        name, lr, base_lr=base_lr, weight_decay=weight_decay, mask=mask, mode=mode, version=version
    )
    if base_lr is None:
        base_lr = (
            float(jax.jit(lr)(jnp.int32(0)))
            if callable(lr) and jit
            else (float(lr(jnp.int32(0))) if callable(lr) else lr)
        )
    ref = make_ref(base_lr)
    dev, params, _ = compare_with_reference(
        tx,
        ref,
        lr,
        tree_name=tree,
        steps=steps,
        jit=jit,
        weight_decay=weight_decay,
        mask=mask,
        ref_kw=ref_kw,
    )
    return (params, ref) if return_params else dev


FAMILY_CONFIGS = {  # together: constant lr, both schedule kinds, both decay modes, masks
    "constant": dict(lr=1e-3),
    "linear_decay_coupled_wd": dict(lr=LINEAR_DECAY, weight_decay=1e-2),  # base_lr = lr(0)
    "decoupled_wd_mask": dict(lr=3e-3, weight_decay=5e-2, mask=decay_matrices, mode="decoupled"),
    "warmup_cosine_base_lr_coupled_wd_mask": dict(
        lr=WARMUP_DECAY, base_lr=PEAK, weight_decay=5e-2, mask=decay_matrices
    ),
}
FAMILY_OPTIMIZERS = ["adabound", "amsbound", "diffgrad", "diffmod"]


# --- the measurement -----------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000,
                        help="steps per comparison (1000 for the quoted figures)")
    steps = parser.parse_args(argv).steps
    jax.config.update("jax_enable_x64", True)  # float64, as in the tests
    print(f"## Against the NumPy float64 references ({steps} jitted steps)\n")
    print("| optimizer | configurations | max relative deviation |")
    print("|---|---|---|")
    for algorithm in ("released", "paper"):
        worst = max(
            run_adamod(tree, steps=steps, jit=True, algorithm=algorithm, **cfg)
            for cfg in ADAMOD_CONFIGS.values()
            for tree in sorted(TREES)
        )
        configs = ", ".join(ADAMOD_CONFIGS)
        print(f"| adamod (algorithm={algorithm!r}) | {configs}; 3 pytrees | {worst:.1e} |")
    for name in FAMILY_OPTIMIZERS:
        results = []
        for cfg in FAMILY_CONFIGS.values():
            kw = dict(cfg)
            if name == "diffmod" and "weight_decay" in kw:
                kw["mode"] = "decoupled"
            results.append(run_family(name, steps=steps, **kw))
        configs = ", ".join(FAMILY_CONFIGS)
        print(f"| {name} | {configs} | {max(results):.1e} |")
    print("\nThe golden trajectories of the PyTorch releases: `python -m tests.golden.compare`.")


if __name__ == "__main__":
    main()
