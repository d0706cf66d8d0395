"""Numeric edges and bad input for every optimizer in ``benchmarks.accuracy.FAMILY``.

float16 overflow of the second moment, non-finite gradients with and without
``optax.apply_if_finite``, 1e5-step runs under ``lax.scan`` against the float64
NumPy reference, the int32 step counter at its maximum, and structural bad
input (tree, shape, dtype). The behaviours are written up in
docs/guides/robustness.md.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamod_optax as ao
from adamod_optax import (
    ClipByDynamicBoundState,
    ScaleByBoundedAdamState,
    ScaleByMomentalBoundState,
)
from benchmarks import numpy_reference as reference
from benchmarks.accuracy import FAMILY
from benchmarks.robustness import LONG_STEPS, long_grads, scan_run

NAMES = sorted(FAMILY)
INT32_MAX = 2**31 - 1


def find(tree, cls):
    """All sub-states of type ``cls`` in an optimizer state."""
    found = []

    def visit(x):
        if isinstance(x, cls):
            found.append(x)
        return x

    jax.tree.map(visit, tree, is_leaf=lambda x: isinstance(x, cls))
    return found


def finite(tree) -> bool:
    return all(
        bool(jnp.all(jnp.isfinite(x)))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    )


def run(tx, params, grads_seq, jit=True):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    out = []
    for g in grads_seq:
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(u)
    return params, state, out


# --------------------------------------------------------------------- float16
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("g", [1000.0, 60000.0])
def test_float16_params_with_float32_state_take_large_gradients(name, g):
    """mu_dtype = nu_dtype = float32: |g| up to float16's max gives finite steps
    that match the float32-params run to float16 rounding."""
    tx = FAMILY[name](mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    grads = [jnp.array([g, -g, 1.0], jnp.float16)] * 5
    p16, state, ups = run(tx, jnp.ones(3, jnp.float16), grads)
    assert all(u.dtype == jnp.float16 for u in ups)
    assert finite(ups) and finite(state) and finite(p16)
    grads32 = [x.astype(jnp.float32) for x in grads]
    p32, _, _ = run(FAMILY[name](), jnp.ones(3, jnp.float32), grads32)
    np.testing.assert_allclose(np.asarray(p16, np.float32), p32, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_float16_default_state(name):
    """Default state (float16 for float16 params): the moments are computed in
    float32 and stored in float16. v = (1 - b2) g^2 fits up to |g| ~ 8093
    (b2 = 0.999): |g| = 1000 is fine. Beyond, v is stored as +inf: the rate is
    0, the element's update is exactly 0, and it stays frozen (b2 * inf = inf)
    until the state is reset; other elements are unaffected."""
    tx = FAMILY[name]()
    _ok, state, ups = run(tx, jnp.ones(2, jnp.float16), [jnp.array([1000.0, 1.0], jnp.float16)] * 3)
    assert finite(ups) and finite(state)

    grads = [jnp.array([1e4, 1.0], jnp.float16)] + [jnp.array([1.0, 1.0], jnp.float16)] * 4
    _, state, ups = run(tx, jnp.ones(2, jnp.float16), grads)
    core = find(state, ScaleByBoundedAdamState)[0]
    assert bool(jnp.isinf(core.nu[0]))
    # AdaBound/AMSBound clip the 0 rate up to their lower bound: that element
    # goes on as SGD with the lower-bound rate instead of freezing.
    clipped = bool(find(state, ClipByDynamicBoundState))
    for u in ups:
        assert bool(jnp.isfinite(u[0]))  # never NaN
        assert (float(u[0]) != 0.0) if clipped else (float(u[0]) == 0.0)
        assert bool(jnp.isfinite(u[1])) and float(u[1]) != 0.0


@pytest.mark.parametrize("b3", [0.999, 0.0])
@pytest.mark.parametrize("name", ["adamod", "adamod_paper", "diffmod"])
def test_float16_rate_average_stays_finite(name, b3):
    """A float16 rate average saturates at 65504 instead of overflowing to +inf (a zero
    second moment makes the rate about lr/eps = 1e5); with b3 = 0 an inf there would make
    the next step 0 * inf = NaN. The step after the zeros is Adam's ordinary first step
    for that element (rate ~ lr / sqrt(1 - b2), well under the saturated average)."""
    tx = FAMILY[name](learning_rate=1e-3, b3=b3)
    grads = jnp.ones((3001, 2), jnp.float16).at[:3000, 0].set(0.0)  # element 0: g = 0, then 1
    before, state_before = scan_run(tx, jnp.ones(2, jnp.float16), grads[:3000])
    p, state = scan_run(tx, jnp.ones(2, jnp.float16), grads)
    assert finite(state) and finite(p)
    (avg,) = [s.rate_avg for s in find(state_before, ScaleByMomentalBoundState)]
    assert float(avg[0]) == 65504.0  # saturated (b3 = 0.999 reaches it by step ~2000)
    assert float(before[0]) == 1.0  # zero gradients never moved it
    step = float(before[0]) - float(p[0])
    assert 1e-4 < step < 1e-2, step  # ~ lr * m / sqrt(v) = 1e-3 * 0.1 / sqrt(1e-3)


# --------------------------------------------------------------- NaN and Inf
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_gradient_without_guard_poisons_only_its_element(name, bad):
    """Unguarded: the element that saw NaN/Inf has non-finite updates from then
    on (its moments hold NaN/Inf forever); every other element is untouched."""
    tx = FAMILY[name]()
    clean = [jnp.array([0.5, -1.0, 2.0]) * (k + 1) for k in range(12)]
    dirty = list(clean)
    dirty[2] = clean[2].at[0].set(bad)
    _p_clean, _, u_clean = run(tx, jnp.ones(3), clean)
    p_dirty, state, u_dirty = run(tx, jnp.ones(3), dirty)
    for uc, ud in zip(u_clean, u_dirty):
        np.testing.assert_array_equal(ud[1:], uc[1:])
    for ud in u_dirty[2:]:
        assert not bool(jnp.isfinite(ud[0]))
    assert not bool(jnp.isfinite(p_dirty[0]))
    core = find(state, ScaleByBoundedAdamState)[0]
    assert not bool(jnp.isfinite(core.mu[0]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_apply_if_finite_leaves_params_and_state_untouched(name, bad):
    tx = optax.apply_if_finite(FAMILY[name](weight_decay=1e-2), max_consecutive_errors=3)
    update = jax.jit(tx.update)
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
    g = lambda k: {"w": jnp.array([0.1, -0.2, 0.3]) * k, "b": jnp.array(0.01 * k)}  # noqa: E731
    state = tx.init(params)
    u, state = update(g(1), state, params)
    params = optax.apply_updates(params, u)
    before_params, before_inner = params, state.inner_state

    bad_grads = {"w": g(2)["w"].at[1].set(bad), "b": g(2)["b"]}
    u, state = update(bad_grads, state, params)
    params = optax.apply_updates(params, u)
    chex.assert_trees_all_equal(u, jax.tree.map(jnp.zeros_like, u))
    chex.assert_trees_all_equal(params, before_params)
    chex.assert_trees_all_equal(state.inner_state, before_inner)
    assert int(state.notfinite_count) == 1 and int(state.total_notfinite) == 1
    assert not bool(state.last_finite)

    # Training then goes on exactly as if the bad step had never happened.
    u, state = update(g(3), state, params)
    params = optax.apply_updates(params, u)
    ref_tx = FAMILY[name](weight_decay=1e-2)
    ref_p = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
    ref_s = ref_tx.init(ref_p)
    for k in (1, 3):
        ru, ref_s = jax.jit(ref_tx.update)(g(k), ref_s, ref_p)
        ref_p = optax.apply_updates(ref_p, ru)
    chex.assert_trees_all_equal(params, ref_p)
    chex.assert_trees_all_equal(state.inner_state, ref_s)
    assert int(state.notfinite_count) == 0


# ------------------------------------------------------------------ long runs
@pytest.mark.parametrize(
    "algorithm, ref_cls", [("released", reference.AdaModReleased), ("paper", reference.AdaModPaper)]
)
def test_long_run_matches_float64_reference(algorithm, ref_cls):
    """1e5 steps under lax.scan. Open-loop gradients, lr 1e-3, weight decay 1e-4.

    Stated tolerances on the final params (|p| ~ 1-20 after moving ~10-100):
    float64 run: 1e-9 relative; float32 run: 2e-4 relative to the distance
    travelled (float32 accumulation of 1e5 steps of size ~1e-3).
    """
    grads = long_grads()
    p0 = np.array([1.0, -1.0, 0.5, 2.0])
    ref = ref_cls()
    p = {"w": p0.copy()}
    for g in grads:
        p = ref.step(p, {"w": g}, 1e-3, weight_decay=1e-4)
    p_ref = p["w"]
    travelled = np.abs(p_ref - p0) + 1e-3

    for dtype, rtol in ((jnp.float64, 1e-9), (jnp.float32, 2e-4)):
        tx = ao.adamod(1e-3, weight_decay=1e-4, algorithm=algorithm)
        p_jax, state = scan_run(tx, jnp.asarray(p0, dtype), jnp.asarray(grads, dtype))
        assert p_jax.dtype == dtype and finite(state) and finite(p_jax)
        err = np.abs(np.asarray(p_jax, np.float64) - p_ref)
        assert np.all(err <= rtol * travelled), (dtype, err / travelled)


@pytest.mark.parametrize("name", NAMES)
def test_long_run_stays_finite(name):
    tx = FAMILY[name]()
    p, state = scan_run(tx, jnp.zeros(4, jnp.float32), jnp.asarray(long_grads(), jnp.float32))
    assert finite(p) and finite(state)
    core = find(state, ScaleByBoundedAdamState)[0]
    assert int(core.count) == LONG_STEPS


# -------------------------------------------------------------- int32 counter
def _set_counts(state, value):
    return jax.tree.map(
        lambda x: jnp.full([], value, jnp.int32)
        if hasattr(x, "dtype") and x.dtype == jnp.int32 and x.ndim == 0 else x,
        state,
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("jit", [True, False])
def test_counter_saturates_at_int32_max(name, jit):
    """From count = 2**31 - 2 the counters saturate at 2**31 - 1 (no wrap to
    negative), bias corrections are 1 and the updates stay finite; for the
    AdaMod forms (no count-dependent bound) they equal those at count 1e6."""
    tx = FAMILY[name](weight_decay=1e-3)
    update = jax.jit(tx.update) if jit else tx.update
    params = jnp.array([1.0, -2.0, 0.0])
    state = tx.init(params)
    for k in range(3):  # some real history in the moments
        _, state = update(jnp.array([0.3, -0.1, 0.0]) * (k + 1), state, params)
    high, mid = _set_counts(state, INT32_MAX - 1), _set_counts(state, 10**6)
    for k in range(4):
        g = jnp.array([0.2, 0.4, 0.0]) * (k + 1)
        u_high, high = update(g, high, params)
        u_mid, mid = update(g, mid, params)
        assert finite(u_high) and finite(high)
        counts = [x for x in jax.tree.leaves(high) if x.dtype == jnp.int32]
        assert counts and all(int(c) == INT32_MAX for c in counts)
        if name.startswith("adamod"):
            np.testing.assert_allclose(u_high, u_mid, rtol=1e-12)


# ------------------------------------------------------- structural bad input
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("jit", [True, False])
def test_structural_bad_input_names_the_leaf(name, jit):
    tx = FAMILY[name]()
    params = {"a": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}, "c": None}
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    good = jax.tree.map(jnp.ones_like, params)

    with pytest.raises(ValueError, match=r"missing from the updates: \['a'\]\['b'\]"):
        update({"a": {"w": good["a"]["w"]}, "c": None}, state, params)
    with pytest.raises(ValueError, match=r"not in the optimizer state: \['a'\]\['x'\]"):
        update({"a": {**good["a"], "x": jnp.ones(1)}, "c": None}, state, params)
    with pytest.raises(ValueError, match=r"\['c'\] is None in the optimizer state"):
        update({**good, "c": jnp.ones(2)}, state, params)
    with pytest.raises(ValueError, match=r"\['a'\]\['w'\] has shape \(3, 2\)"):
        update({**good, "a": {**good["a"], "w": jnp.ones((3, 2))}}, state, params)
    with pytest.raises(ValueError, match=r"\['a'\]\['b'\] has shape \(1,\)"):  # would broadcast
        update({**good, "a": {**good["a"], "b": jnp.ones(1)}}, state, params)
    with pytest.raises(TypeError, match=r"\['a'\]\['b'\] has dtype int32"):
        update({**good, "a": {**good["a"], "b": jnp.ones(3, jnp.int32)}}, state, params)
    u, _ = update(good, state, params)  # the good tree still works
    assert u["c"] is None and finite(u)


def test_check_updates_has_no_runtime_cost():
    """The check reads only structure/shape/dtype: the jitted step's HLO is the
    same with and without it."""
    from adamod_optax import _base

    tx = ao.adamod(1e-2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    calls = []
    original = _base.check_updates
    try:
        _base.check_updates = lambda *a, **k: calls.append(a) or original(*a, **k)
        lowered = jax.jit(tx.update).lower(params, state, params).as_text()
        assert calls, "the step no longer calls _base.check_updates: this test checks nothing"
        _base.check_updates = lambda *a, **k: None
        unchecked = jax.jit(tx.update).lower(params, state, params).as_text()
    finally:
        _base.check_updates = original
    assert lowered == unchecked
