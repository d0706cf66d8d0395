"""AdaBound, AMSBound, DiffGrad, DiffMod against their NumPy float64 references, plus the bounds
and friction as building blocks, the schedule/base_lr rules and validation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamod_optax as ao
from benchmarks.accuracy import (
    FAMILY_CONFIGS,
    FAMILY_OPTIMIZERS,
    FINAL,
    GAMMA,
    LINEAR_DECAY,
    PEAK,
    TOL,
    TREES,
    WARMUP_DECAY,
    closed_loop_grad,
    decay_matrices,
    flat,
    run_family,
    unflat,
)
from benchmarks.numpy_reference import AdaBoundLowerAdaModUpper


@pytest.mark.parametrize("config", sorted(FAMILY_CONFIGS))
@pytest.mark.parametrize("name", FAMILY_OPTIMIZERS)
def test_matches_reference_1000_steps_jit(name, config):
    kw = dict(FAMILY_CONFIGS[config])
    if name == "diffmod" and "weight_decay" in kw:
        kw["mode"] = "decoupled"  # DiffMod's decay is AdaMod's decoupled one
    assert run_family(name, **kw) <= TOL


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("name", ["diffgrad", "diffmod"])
def test_friction_versions_match_reference(name, version):
    assert run_family(name, WARMUP_DECAY, version=version, tree="dense") <= TOL


def test_bounds_are_active_in_the_reference_runs():
    """The AdaBound runs above are not vacuous: both bounds clip some rates at t = 1000."""
    _params, ref = run_family("adabound", 1e-3, return_params=True)
    eta_low = eta_high = 0
    t = ref.t
    final = FINAL
    lower, upper = final * (1 - 1 / (GAMMA * t + 1)), final * (1 + 1 / (GAMMA * t))
    for _key, v in ref.v.items():
        eta = 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) / (np.sqrt(v) + 1e-8)
        eta_low += int(np.sum(eta < lower))
        eta_high += int(np.sum(eta > upper))
    assert eta_low > 0 and eta_high > 0, (eta_low, eta_high)


@pytest.mark.parametrize("name", FAMILY_OPTIMIZERS)
def test_matches_reference_without_jit(name):
    mode = "decoupled" if name == "diffmod" else "coupled"
    assert (
        run_family(
            name,
            LINEAR_DECAY,
            steps=60,
            jit=False,
            weight_decay=1e-2,
            mode=mode,
            mask=decay_matrices,
        )
        <= TOL
    )


# Exact float32 schedule values (see test_adamod): eager and jitted runs are then comparable.
EXACT_SCHEDULE = optax.piecewise_constant_schedule(1e-2, {10: 0.5, 20: 0.25})


@pytest.mark.parametrize("lr", [1e-2, EXACT_SCHEDULE], ids=["constant", "piecewise"])
@pytest.mark.parametrize("name", FAMILY_OPTIMIZERS)
def test_jit_equals_no_jit(name, lr):
    mode = "decoupled" if name == "diffmod" else "coupled"
    kw = dict(
        steps=30,
        tree="dense",
        weight_decay=1e-2,
        mask=decay_matrices,
        mode=mode,
        return_params=True,
    )
    eager, _ = run_family(name, lr, jit=False, **kw)
    jitted, _ = run_family(name, lr, jit=True, **kw)
    chex.assert_trees_all_close(eager, jitted, rtol=1e-13, atol=0)


# --- the bounds as building blocks ------------------------------------------------------------


def test_chain_adabound_lower_with_adamod_upper():
    """The module docstring's chain: AdaBound's lower bound, then AdaMod's momental bound."""
    rate_bound = optax.chain(
        ao.clip_by_dynamic_bound(1e-3, final_lr=FINAL, gamma=GAMMA, upper=False),
        ao.scale_by_momental_bound(b3=0.99),
    )
    tx = optax.chain(ao.scale_by_bounded_adam(1e-3, rate_transform=rate_bound), optax.scale(-1.0))
    ref = AdaBoundLowerAdaModUpper(1e-3, FINAL, GAMMA, b3=0.99)
    params0 = jax.tree.map(jnp.asarray, TREES["nested"])
    step = jax.jit(
        lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p))
    )
    params, state, ref_params = params0, tx.init(params0), flat(params0)
    plain = ao.adamod(1e-3, b3=0.99)  # the same without the lower bound, to show it acts
    p_plain, s_plain = params0, plain.init(params0)
    plain_update = jax.jit(plain.update)
    for k in range(1000):
        g = closed_loop_grad(ref_params, k)
        ref_params = ref.step(ref_params, g, 1e-3)
        params, state = step(params, state, unflat(g, params0))
        g_plain = unflat(closed_loop_grad(flat(p_plain), k), params0)
        u, s_plain = plain_update(g_plain, s_plain, p_plain)
        p_plain = optax.apply_updates(p_plain, u)
    for key, p in flat(params).items():
        moved = np.max(np.abs(ref_params[key] - flat(params0)[key]))
        assert np.max(np.abs(p - ref_params[key])) / moved <= TOL
    gap = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p_plain), strict=False)
    )
    assert gap > 1e-3  # the lower bound changed the trajectory


def test_upper_or_lower_only():
    """lower=False / upper=False keep only the other side of the clip."""
    rates = {"r": jnp.array([1e-6, 0.1, 1e3])}
    t = 10.0
    lo, hi = 0.1 * (1 - 1 / (0.5 * t + 1)), 0.1 * (1 + 1 / (0.5 * t))
    for lower, upper, want in [
        (True, True, [lo, 0.1, hi]),
        (True, False, [lo, 0.1, 1e3]),
        (False, True, [1e-6, 0.1, hi]),
    ]:
        tx = ao.clip_by_dynamic_bound(2.0, 0.1, 0.5, lower=lower, upper=upper)
        s = tx.init(rates)
        out, s = tx.update(rates, s, count=jnp.asarray(9, jnp.int32))  # update 10: t = 10
        np.testing.assert_allclose(np.asarray(out["r"]), want, rtol=1e-14)
        # the state records the bounds it applied (for the diagnostics), no counter
        np.testing.assert_allclose([s.lower, s.upper], [lo if lower else 0.0,
                                                        hi if upper else np.inf], rtol=1e-14)


def test_clip_by_dynamic_bound_needs_the_count():
    tx = ao.clip_by_dynamic_bound(1e-3)
    rates = {"r": jnp.ones(2)}
    with pytest.raises(ValueError, match="count"):
        tx.update(rates, tx.init(rates))


# --- schedules and base_lr ----------------------------------------------------------------------


def test_schedule_starting_at_zero_needs_base_lr():
    with pytest.raises(ValueError, match="base_lr"):
        ao.adabound(WARMUP_DECAY)
    with pytest.raises(ValueError, match="base_lr"):
        ao.amsbound(optax.linear_schedule(0.0, 1e-3, 10))
    with pytest.raises(ValueError, match="base_lr"):
        ao.clip_by_dynamic_bound(WARMUP_DECAY)
    tx = ao.adabound(WARMUP_DECAY, base_lr=PEAK)  # fine, and finite from step 1 (lr_0 = 0)
    p = jnp.ones(3)
    s = tx.init(p)
    for _ in range(3):
        u, s = tx.update(jnp.ones(3), s, p)
        assert bool(jnp.all(jnp.isfinite(u)))


def test_constant_zero_learning_rate_takes_no_step():
    for fn in (ao.adabound, ao.amsbound):
        tx = fn(0.0)
        p = jnp.ones(3)
        u, _ = tx.update(jnp.ones(3), tx.init(p), p)
        chex.assert_trees_all_equal(u, jnp.zeros(3))


def test_bounds_follow_the_schedule():
    """final_t = final_lr * lr_t / base_lr: halving lr halves the clipped (SGD-like) step."""
    sched = optax.piecewise_constant_schedule(1e-3, {5: 0.5})
    tx = ao.adabound(sched, final_lr=0.1, gamma=10.0)  # bounds ~ [final, final] after a few steps
    p = jnp.zeros(2)
    s = tx.init(p)
    us = []
    for _ in range(8):
        u, s = tx.update(jnp.array([1e-3, 1e-3]), s, p)  # tiny g: Adam's rate is far above
        us.append(float(u[0]))
    m4 = 1e-3 * (1 - 0.9**5)  # m after 5 / 6 constant-gradient steps
    m5 = 1e-3 * (1 - 0.9**6)
    np.testing.assert_allclose(us[4] / m4, -0.1 * (1 + 1 / 50), rtol=1e-6)
    np.testing.assert_allclose(us[5] / m5, -0.05 * (1 + 1 / 60), rtol=1e-6)


@pytest.mark.parametrize("name", ["adabound", "amsbound"])
def test_inject_hyperparams_with_base_lr_equals_plain(name):
    fn = ao.adabound if name == "adabound" else ao.amsbound
    params = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(2)}
    kw = dict(final_lr=FINAL, gamma=GAMMA, weight_decay=1e-2)

    def traj(tx):
        state, p, out = tx.init(params), params, []
        step = jax.jit(tx.update)
        for k in range(40):
            u, state = step(unflat(closed_loop_grad(flat(p), k), params), state, p)
            p = optax.apply_updates(p, u)
            out.append(p)
        return out

    plain = traj(fn(WARMUP_DECAY, base_lr=PEAK, **kw))
    injected = traj(optax.inject_hyperparams(fn)(learning_rate=WARMUP_DECAY, base_lr=PEAK, **kw))
    chex.assert_trees_all_equal(plain, injected)
    # Without base_lr the injected optimizer cannot see the schedule's start (documented).
    sched = optax.linear_schedule(3e-3, 1e-4, 40)
    a = traj(fn(sched, **kw))
    b = traj(optax.inject_hyperparams(fn)(learning_rate=sched, **kw))
    base = float(sched(jnp.int32(0)))  # the float32 value the optimizer itself uses
    c = traj(optax.inject_hyperparams(fn)(learning_rate=sched, base_lr=base, **kw))
    chex.assert_trees_all_equal(a, c)
    assert float(jnp.max(jnp.abs(a[-1]["w"] - b[-1]["w"]))) > 1e-6


# --- friction ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_friction_tracks_gradient_changes_no_stale_reference(version):
    """Friction = DiffMod's step / AdaMod's step follows |g_prev - g| and is not stuck at 0.5.

    The widely copied PyTorch DiffMod keeps a reference to the reused gradient buffer, so its
    g_prev - g is 0 from step 2 on and friction is 0.5 for every version; the state here holds
    a copy of the previous gradient.
    """
    rng = np.random.default_rng(0)
    p = jnp.zeros(64)
    dm, am = ao.diffmod(1e-2, friction_version=version), ao.adamod(1e-2)
    s_dm, s_am = dm.init(p), am.init(p)
    g_prev = np.zeros(64)
    ratios = []
    for _ in range(50):
        g = rng.normal(size=64) * 2.0
        u_dm, s_dm = dm.update(jnp.asarray(g), s_dm, p)
        u_am, s_am = am.update(jnp.asarray(g), s_am, p)
        ratio = np.asarray(u_dm) / np.asarray(u_am)
        d = g_prev - g
        want = {
            0: 1 / (1 + np.exp(-np.abs(d))),
            1: 1 / (1 + np.exp(-d)),
            2: 9 / (1 + np.exp(-0.5 * np.abs(d))) - 4,
        }[version]
        np.testing.assert_allclose(ratio, want, rtol=1e-12)
        np.testing.assert_array_equal(np.asarray(s_dm[0].prev_grad), g)  # a copy, kept
        g_prev = g
        ratios.append(ratio)
    ratios = np.array(ratios[1:])
    assert np.std(ratios) > 0.05 and np.max(np.abs(ratios - 0.5)) > 0.2


def test_friction_sees_gradient_after_coupled_l2():
    """DiffGrad stores g + wd*theta as the previous gradient, as the release does."""
    p = jnp.array([2.0, -1.0])
    tx = ao.diffgrad(1e-2, weight_decay=0.5)
    s = tx.init(p)
    _, s = tx.update(jnp.array([0.1, 0.2]), s, p)
    prev = next(
        x
        for x in jax.tree.leaves(s, is_leaf=lambda x: isinstance(x, ao.WithFrictionState))
        if isinstance(x, ao.WithFrictionState)
    ).prev_grad
    np.testing.assert_allclose(np.asarray(prev), [0.1 + 1.0, 0.2 - 0.5], rtol=1e-15)


def test_with_friction_wraps_any_transformation():
    tx = ao.with_friction(optax.sgd(1.0), version=2)
    s = tx.init(jnp.zeros(2))
    u, s = tx.update(jnp.array([1.0, -3.0]), s)
    np.testing.assert_allclose(
        np.asarray(u),
        -np.array([1.0, -3.0]) * (9 / (1 + np.exp(-0.5 * np.array([1.0, 3.0]))) - 4),
        rtol=1e-12,
    )


def test_friction_version_injected_as_array_is_handled():
    """inject_hyperparams turns friction_version into a (traced) int array; it still works."""
    p = {"w": jnp.linspace(-1.0, 1.0, 4)}
    g = {"w": jnp.array([0.3, -0.2, 1.5, 0.0])}
    plain = ao.diffmod(1e-2, friction_version=2)
    inj = optax.inject_hyperparams(ao.diffmod)(learning_rate=1e-2, friction_version=2)
    u1, _ = jax.jit(plain.update)(g, plain.init(p), p)
    u2, _ = jax.jit(inj.update)(g, inj.init(p), p)
    chex.assert_trees_all_equal(u1, u2)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn,kwargs,name",
    [
        (ao.adabound, dict(gamma=0.0), "gamma"),
        (ao.adabound, dict(gamma=-1e-3), "gamma"),
        (ao.amsbound, dict(gamma=float("nan")), "gamma"),
        (ao.adabound, dict(final_lr=-0.1), "final_lr"),
        (ao.amsbound, dict(final_lr=-1.0), "final_lr"),
        (ao.adabound, dict(base_lr=0.0), "base_lr"),
        (ao.adabound, dict(base_lr=-1e-3), "base_lr"),
        (ao.adabound, dict(learning_rate=-1e-3), "learning_rate"),
        (ao.adabound, dict(b1=1.0), "b1"),
        (ao.amsbound, dict(b2=-0.1), "b2"),
        (ao.adabound, dict(eps=-1.0), "eps"),
        (ao.adabound, dict(weight_decay=-1e-4), "weight_decay"),
        (ao.adabound, dict(weight_decay_mode="l2"), "weight_decay_mode"),
        (ao.diffgrad, dict(weight_decay_mode="adamw"), "weight_decay_mode"),
        (ao.diffgrad, dict(friction_version=3), "friction_version"),
        (ao.diffgrad, dict(b2=1.0), "b2"),
        (ao.diffgrad, dict(weight_decay=-1.0), "weight_decay"),
        (ao.diffmod, dict(friction_version=-1), "friction_version"),
        (ao.diffmod, dict(friction_version=1.5), "friction_version"),
        (ao.diffmod, dict(friction_version="0"), "friction_version"),
        (ao.diffmod, dict(b3=1.0), "b3"),
        (ao.diffmod, dict(len_memory=0.5), "len_memory"),
        (ao.diffmod, dict(len_memory=100, b3=0.9), "len_memory"),
        (ao.diffmod, dict(eps=-1e-8), "eps"),
    ],
)
def test_invalid_hyperparameters_raise(fn, kwargs, name):
    with pytest.raises(ValueError, match=name):
        fn(**{"learning_rate": 1e-3, **kwargs})


def test_building_block_validation():
    with pytest.raises(ValueError, match="gamma"):
        ao.clip_by_dynamic_bound(1e-3, gamma=0.0)
    with pytest.raises(ValueError, match="version"):
        ao.with_friction(optax.identity(), version=7)


def test_len_memory_and_defaults():
    p = jnp.ones(3)
    a, b = ao.diffmod(1e-2, len_memory=100), ao.diffmod(1e-2, b3=0.99)
    ua, _ = a.update(jnp.ones(3), a.init(p), p)
    ub, _ = b.update(jnp.ones(3), b.init(p), p)
    chex.assert_trees_all_equal(ua, ub)
    for fn in (ao.adabound, ao.amsbound, ao.diffgrad, ao.diffmod):
        fn(1e-3, b1=0.0, eps=0.0)


@pytest.mark.parametrize("amsbound", [False, True])
def test_eps_root_matches_reference(amsbound):
    from benchmarks.accuracy import compare_with_reference
    from benchmarks.numpy_reference import AdaBound

    fn = ao.amsbound if amsbound else ao.adabound
    tx = fn(1e-3, 0.8, 0.99, 1e-6, 1e-5, final_lr=FINAL, gamma=GAMMA)
    ref = AdaBound(1e-3, FINAL, GAMMA, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-5,
                   amsbound=amsbound)
    dev, _, _ = compare_with_reference(tx, ref, 1e-3, tree_name="nested", steps=300)
    assert dev <= TOL
