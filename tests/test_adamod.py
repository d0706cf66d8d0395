"""AdaMod against the NumPy float64 references, its invariants and its validation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamod_optax as ao
from benchmarks.accuracy import (
    ADAMOD_CONFIGS,
    TOL,
    TREES,
    WARMUP_DECAY,
    closed_loop_grad,
    compare_with_reference,
    decay_matrices,
    flat,
    run_adamod,
    unflat,
)
from benchmarks.numpy_reference import AdaModPaper, AdaModReleased


@pytest.mark.parametrize("algorithm", ["released", "paper"])
@pytest.mark.parametrize("tree_name", sorted(TREES))
@pytest.mark.parametrize("config", sorted(ADAMOD_CONFIGS))
def test_matches_reference_1000_steps_jit(config, tree_name, algorithm):
    cfg = ADAMOD_CONFIGS[config]
    assert run_adamod(tree_name, steps=1000, jit=True, algorithm=algorithm, **cfg) <= TOL


@pytest.mark.parametrize("algorithm", ["released", "paper"])
@pytest.mark.parametrize("config", ["constant", "warmup_wd_mask_fn", "linear_decay_wd"])
def test_matches_reference_without_jit(config, algorithm):
    cfg = ADAMOD_CONFIGS[config]
    assert run_adamod("dense", steps=150, jit=False, algorithm=algorithm, **cfg) <= TOL


def test_mask_pytree_equals_mask_callable():
    params = jax.tree.map(jnp.asarray, TREES["nested"])
    mask_tree = decay_matrices(params)
    a = run_adamod("nested", lr=1e-2, steps=200, jit=True, weight_decay=0.1, mask=mask_tree)
    b = run_adamod("nested", lr=1e-2, steps=200, jit=True, weight_decay=0.1, mask=decay_matrices)
    assert a <= TOL and b <= TOL


def test_weight_decay_schedule():
    """A weight-decay schedule equals a reference fed the scheduled values step by step."""
    wd_sched = optax.linear_schedule(0.1, 0.0, 500)
    params0 = jax.tree.map(jnp.asarray, TREES["dense"])
    tx = ao.adamod(1e-2, weight_decay=wd_sched)
    ref = AdaModReleased()
    step = jax.jit(
        lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p))
    )
    wd_jit = jax.jit(wd_sched)
    params, state, ref_params = params0, tx.init(params0), flat(params0)
    for k in range(700):
        g = closed_loop_grad(ref_params, k)
        ref_params = ref.step(ref_params, g, 1e-2, float(wd_jit(jnp.int32(k))))
        params, state = step(params, state, unflat(g, params0))
    for name, p in flat(params).items():
        moved = np.max(np.abs(ref_params[name] - flat(params0)[name]))
        assert np.max(np.abs(p - ref_params[name])) / moved <= TOL


# Schedules whose float32 values are exact (optax's float32 schedule arithmetic can round
# differently eagerly and under jit; that is the schedule's property, not the optimizer's).
EXACT_SCHEDULE = optax.piecewise_constant_schedule(1e-2, {10: 0.5, 20: 0.25})


@pytest.mark.parametrize("lr", [1e-2, EXACT_SCHEDULE], ids=["constant", "piecewise"])
def test_jit_equals_no_jit(lr):
    params = jax.tree.map(jnp.asarray, TREES["nested"])
    tx = ao.adamod(lr, weight_decay=1e-2, mask=decay_matrices)

    def run(step):
        p, s = params, tx.init(params)
        for k in range(30):
            g = unflat(closed_loop_grad(flat(p), k), params)
            p, s = step(p, s, g)
        return p, s

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    chex.assert_trees_all_close(run(step), run(jax.jit(step)), rtol=1e-13, atol=0)


# --- invariants ------------------------------------------------------------------------------


def _adam_released_step1(g, lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v = (1 - b1) * g, (1 - b2) * g * g
    return -lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)


class _AdamReleasedForm:
    """NumPy float64 Adam in the released code's form (ALGORITHMS.md with b3 = 0): bias
    corrections folded into the step size, eps on the uncorrected sqrt(v). Written here, not
    taken from the AdaMod reference, so that b3 = 0 is checked against plain Adam."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
        self.b1, self.b2, self.eps, self.t, self.m, self.v = b1, b2, eps, 0, {}, {}

    def step(self, params, grads, lr, weight_decay=0.0, decay_mask=None):
        assert weight_decay == 0.0
        self.t += 1
        out = {}
        for k, p in params.items():
            g = grads[k]
            self.m[k] = self.b1 * self.m.get(k, 0.0) + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v.get(k, 0.0) + (1 - self.b2) * g * g
            step = lr * np.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
            out[k] = p - step * self.m[k] / (np.sqrt(self.v[k]) + self.eps)
        return out


def test_b3_zero_is_adam_released_form():
    """b3 = 0: s_t = eta_t, so AdaMod is Adam with eps on the uncorrected sqrt(v): against a
    NumPy Adam, and bit for bit the package's core without a bound (the bound is the identity)."""
    dev, _, _ = compare_with_reference(
        ao.adamod(WARMUP_DECAY, b3=0.0), _AdamReleasedForm(), WARMUP_DECAY, steps=300
    )
    assert dev <= TOL
    params = jax.tree.map(jnp.asarray, TREES["dense"])
    tx = ao.adamod(WARMUP_DECAY, b3=0.0)
    adam = optax.chain(ao.scale_by_bounded_adam(WARMUP_DECAY), optax.scale(-1.0))
    s1, s2 = tx.init(params), adam.init(params)
    for k in range(100):
        g = unflat(closed_loop_grad(flat(params), k), params)
        u1, s1 = tx.update(g, s1, params)
        u2, s2 = adam.update(g, s2, params)
        chex.assert_trees_all_equal(u1, u2)
        params = optax.apply_updates(params, u1)


def test_paper_b3_zero_is_optax_adam():
    params = jax.tree.map(jnp.asarray, TREES["dense"])
    tx = ao.adamod(1e-2, b3=0.0, algorithm="paper")
    adam = optax.adam(1e-2)
    s1, s2 = tx.init(params), adam.init(params)
    for k in range(100):
        g = unflat(closed_loop_grad(flat(params), k), params)
        u1, s1 = tx.update(g, s1, params)
        u2, s2 = adam.update(g, s2, params)
        chex.assert_trees_all_close(u1, u2, rtol=1e-12, atol=1e-18)
        params = optax.apply_updates(params, u1)


@pytest.mark.parametrize("b3", [0.9, 0.999, 0.9999])
def test_step_one_is_one_minus_b3_times_adam(b3):
    g = np.array([0.5, -2.0, 1e-3, 0.0, 30.0])
    tx = ao.adamod(1e-3, b3=b3)
    params = jnp.zeros(5)
    u, _ = tx.update(jnp.asarray(g), tx.init(params), params)
    np.testing.assert_allclose(np.asarray(u), (1 - b3) * _adam_released_step1(g, 1e-3), rtol=1e-14)


def _find(state, cls):
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, cls))
    found = [s for s in leaves if isinstance(s, cls)]
    assert len(found) == 1
    return found[0]


def test_bounded_rate_never_exceeds_rate_or_average():
    """|update| / |m| == min(eta, s) <= eta and <= s, elementwise, every step."""
    params = jax.tree.map(jnp.asarray, TREES["single"])
    tx = ao.adamod(WARMUP_DECAY, b3=0.99)
    ref = AdaModReleased(b3=0.99)
    state, ref_params = tx.init(params), flat(params)
    sched = jax.jit(WARMUP_DECAY)
    update = jax.jit(tx.update)
    for k in range(300):
        g = closed_loop_grad(ref_params, k)
        lr_k = float(sched(jnp.int32(k)))
        ref_params = ref.step(ref_params, g, lr_k)
        u, state = update(unflat(g, params), state, params)
        eta, s = ref.rates(lr_k)
        core = _find(state, ao.ScaleByBoundedAdamState)
        s_pkg = _find(state, ao.ScaleByMomentalBoundState).rate_avg
        m = np.asarray(core.mu["x"])
        rate = np.abs(np.asarray(u["x"])) / np.where(m == 0, 1, np.abs(m))
        rate = np.where(m == 0, 0, rate)
        np.testing.assert_allclose(np.asarray(s_pkg["x"]), s["['x']"], rtol=1e-12)
        assert np.all(rate <= eta["['x']"] * (1 + 1e-12))
        assert np.all(rate <= np.asarray(s_pkg["x"]) * (1 + 1e-12))
        params = optax.apply_updates(params, u)


@pytest.mark.parametrize("len_memory", [10, 1000, 1])
def test_len_memory_is_b3(len_memory):
    """len_memory L means b3 = 1 - 1/L (ALGORITHMS.md): against the NumPy reference at that b3.
    b3 and 1 - b3 differ for these L (0.9/0.1, 0.999/0.001, 0/1), and the reference at
    1 - b3 is far away (or, at L = 1, invalid), so a swapped b3 fails here."""
    b3 = 1 - 1 / len_memory
    tx = ao.adamod(1e-2, len_memory=len_memory)
    dev, _, _ = compare_with_reference(tx, AdaModReleased(b3=b3), 1e-2, steps=200)
    assert dev <= TOL
    if len_memory > 1:
        swapped, _, _ = compare_with_reference(tx, AdaModReleased(b3=1 - b3), 1e-2, steps=200)
        assert swapped > 1e-3


def test_learning_rate_inside_the_average():
    """With a schedule, bounding the lr-free rate and scaling afterwards is a different result."""
    params = jax.tree.map(jnp.asarray, TREES["single"])
    tx = ao.adamod(WARMUP_DECAY)
    # lr outside: the bound over rates computed with lr = 1, then multiplied by the schedule
    outside = optax.chain(
        ao.scale_by_bounded_adam(1.0, rate_transform=ao.scale_by_momental_bound(0.999)),
        optax.scale_by_learning_rate(WARMUP_DECAY),
    )
    p1 = p2 = params
    s1, s2 = tx.init(params), outside.init(params)
    for k in range(60):
        g = unflat(closed_loop_grad(flat(p1), k), params)
        u1, s1 = tx.update(g, s1, p1)
        u2, s2 = outside.update(g, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    moved = float(jnp.max(jnp.abs(p1["x"] - params["x"])))
    gap = float(jnp.max(jnp.abs(p1["x"] - p2["x"])))
    assert gap > 0.1 * moved  # not a rounding difference: the released rule is kept


def test_paper_differs_from_released():
    """ALGORITHMS.md: the two forms are different optimizers (constant gradient ratio at t=10)."""
    g = jnp.ones(3)
    rel, pap = ao.adamod(1e-3), ao.adamod(1e-3, algorithm="paper")
    p = jnp.zeros(3)
    sr, sp = rel.init(p), pap.init(p)
    for _ in range(10):
        ur, sr = rel.update(g, sr, p)
        up, sp = pap.update(g, sp, p)
    ratio = float(ur[0] / up[0])
    assert 2.0 < ratio < 2.4, ratio  # ALGORITHMS.md: 2.2x at t = 10


def test_counter_saturates():
    tx = ao.adamod(1e-3)
    p = jnp.ones(2)
    state = tx.init(p)
    imax = jnp.iinfo(jnp.int32).max
    state = jax.tree.map(
        lambda x: jnp.full_like(x, imax - 1) if (x.dtype == jnp.int32 and x.ndim == 0) else x, state
    )
    for _ in range(3):
        u, state = tx.update(jnp.ones(2), state, p)
        assert bool(jnp.all(jnp.isfinite(u)))
    counts = [x for x in jax.tree.leaves(state) if x.dtype == jnp.int32]
    assert all(int(c) == imax for c in counts)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(b1=1.0), "b1"),
        (dict(b1=-0.1), "b1"),
        (dict(b2=1.5), "b2"),
        (dict(b3=1.0), "b3"),
        (dict(b3=-0.5), "b3"),
        (dict(b3=float("nan")), "b3"),
        (dict(eps=-1e-8), "eps"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(len_memory=0.5), "len_memory"),
        (dict(len_memory=100, b3=0.9), "len_memory"),
        (dict(algorithm="adam"), "algorithm"),
        (dict(learning_rate=np.float32(-1)), "learning_rate"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, name):
    kw = {"learning_rate": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=name):
        ao.adamod(**kw)


def test_learning_rate_type_error():
    with pytest.raises(TypeError, match="learning_rate"):
        ao.adamod("0.001")


def test_b3_range_message_says_interval():
    with pytest.raises(ValueError, match=r"\[0\.0, 1\.0\)"):
        ao.adamod(1e-3, b3=1.0)


def test_boundary_values_accepted():
    for kw in [dict(b1=0.0), dict(b2=0.0), dict(b3=0.0), dict(eps=0.0), dict(len_memory=1)]:
        ao.adamod(1e-3, **kw)
    ao.adamod(0.0)


def test_weight_decay_needs_params():
    tx = ao.adamod(1e-3, weight_decay=1e-2)
    p = jnp.ones(3)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(3), tx.init(p))
    tx0 = ao.adamod(1e-3)  # no decay: params are optional
    tx0.update(jnp.ones(3), tx0.init(p))


@pytest.mark.parametrize("algorithm", ["released", "paper"])
def test_eps_root_matches_reference(algorithm):
    """eps_root sits inside the square root as in optax.scale_by_adam (released form: on v_t,
    paper form: on v_hat_t), checked against the NumPy reference with non-default b1/b2/eps."""
    hp = dict(b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-4)
    tx = ao.adamod(WARMUP_DECAY, **hp, b3=0.9, algorithm=algorithm, weight_decay=1e-2)
    ref = (AdaModReleased if algorithm == "released" else AdaModPaper)(b3=0.9, **hp)
    dev, _, _ = compare_with_reference(
        tx, ref, WARMUP_DECAY, tree_name="nested", steps=200, weight_decay=1e-2
    )
    assert dev <= TOL
    # eps_root really acts: the reference without it ends elsewhere.
    ref0 = (AdaModReleased if algorithm == "released" else AdaModPaper)(
        b3=0.9, **{**hp, "eps_root": 0.0})
    dev0, _, _ = compare_with_reference(
        tx, ref0, WARMUP_DECAY, tree_name="nested", steps=200, weight_decay=1e-2
    )
    assert dev0 > 1e-4


def test_default_eps_root_is_the_release():
    """eps_root defaults to 0, as in the released algorithm: the default optimizer follows the
    NumPy reference of the release to float64 precision, and a small eps_root > 0 does not."""
    ref = AdaModReleased(b3=0.9)
    dev, _, _ = compare_with_reference(ao.adamod(1e-2, b3=0.9), ref, 1e-2, tree_name="nested",
                                       steps=200)
    assert dev <= 1e-12
    tiny = ao.adamod(1e-2, b3=0.9, eps_root=1e-10)
    dev_tiny, _, _ = compare_with_reference(tiny, AdaModReleased(b3=0.9), 1e-2,
                                            tree_name="nested", steps=200)
    assert dev_tiny > 1e-9
