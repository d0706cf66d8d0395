"""Shared test helpers: the optimizer registry, the closed-loop reference harness, long runs.

Tests and benchmarks import these (``from tests import helpers``); no test module imports
another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from tests.reference import (
    AdaBound,
    AdaModPaper,
    AdaModReleased,
    DiffGrad,
    DiffMod,
)

# --- the family, for tests parametrised over every optimizer ----------------------------------

class Entry:
    def __init__(self, fn, **base):
        self.fn, self.base = fn, base

    def __call__(self, **kw):
        return self.fn(**{**self.base, **kw})


def entry(fn, **base):
    return Entry(fn, **base)


FAMILY = {
    "adamod": entry(ao.adamod, learning_rate=1e-2),
    "adamod_paper": entry(ao.adamod, learning_rate=1e-2, algorithm="paper"),
}
FAMILY.update({
    # final_lr is an absolute SGD learning rate (it does not follow `learning_rate` unless
    # base_lr is given); 1e-3 keeps the SGD end phase stable on Rosenbrock (curvature ~1000).
    "adabound": entry(ao.adabound, learning_rate=1e-2, final_lr=1e-3),
    "amsbound": entry(ao.amsbound, learning_rate=1e-2, final_lr=1e-3),
    "diffgrad": entry(ao.diffgrad, learning_rate=1e-2),
    "diffmod": entry(ao.diffmod, learning_rate=1e-2),
})


# --- NumPy-reference harness: several pytrees and a closed-loop gradient ---------------------

TOL = 1e-9  # relative to the parameters' movement

# --- problems: several pytrees and a closed-loop gradient ------------------------------------


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
    """(optimizer, reference, extra reference step kwargs, base learning rate for the reference)."""
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


# --- long runs -----------------------------------------------------------------------------------

LONG_STEPS = 100_000


def long_grads():
    rng = np.random.default_rng(7)
    k = np.arange(LONG_STEPS)[:, None]
    g = np.cos(1e-3 * k * np.array([1.0, 3.0, 7.0, 0.5])) + 0.3 * rng.normal(size=(LONG_STEPS, 4))
    g[:, 3] *= 1e-3  # a small-gradient coordinate
    return g.astype(np.float32).astype(np.float64)  # exactly representable in float32


def scan_run(tx, p0, grads):
    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (p, s), _ = jax.jit(lambda p, gs: jax.lax.scan(body, (p, tx.init(p)), gs))(p0, grads)
    return p, s
