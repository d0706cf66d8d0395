"""adamod inside optax's combinators: each test fails if the composition breaks.

Parameters are float64 (conftest enables x64) so that comparisons against the
same arithmetic done another way can be tight. Where the two paths execute the
same floating-point operations the test asserts bit equality. The file also runs
with x64 off (tests/repository/test_x64_off.py): parameters are then float32 and
the comparison with the NumPy float64 reference uses float32 tolerances.
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamod_optax import adamod


def _params():
    return {
        "w": jnp.asarray(np.linspace(-1.0, 1.0, 6).reshape(2, 3)),
        "b": jnp.asarray([0.5, -0.25, 0.125]),
    }


def _grads(k):
    """A deterministic, step-dependent gradient tree like :func:`_params`."""
    rng = np.random.default_rng(k)
    return {
        "w": jnp.asarray(rng.normal(size=(2, 3))),
        "b": jnp.asarray(rng.normal(size=3)),
    }


def _run(tx, params, grads_seq, jit=True):
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    for g in grads_seq:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_multi_transform_groups_use_their_own_hyperparameters():
    """Each group of multi_transform behaves exactly like adamod on that group alone."""
    params = _params()
    grads = [_grads(k) for k in range(5)]
    txs = {
        "fast": adamod(1e-2, b3=0.9, weight_decay=1e-2),
        "slow": adamod(1e-3, b3=0.999),
    }
    labels = {"w": "fast", "b": "slow"}
    tx = optax.multi_transform(txs, labels)
    got, _ = _run(tx, params, grads)

    for key, label in labels.items():
        alone, _ = _run(txs[label], {key: params[key]}, [{key: g[key]} for g in grads])
        chex.assert_trees_all_equal(got[key], alone[key])
    # The groups really are different: swapping the labels changes the result.
    swapped, _ = _run(optax.multi_transform(txs, {"w": "slow", "b": "fast"}), params, grads)
    assert not np.allclose(swapped["w"], got["w"])


def test_multi_steps_accumulates_then_steps_on_the_mean_gradient():
    k = 3
    params = _params()
    grads = [_grads(i) for i in range(3 * k)]
    # Newer optax's MultiSteps accumulates in float32 unless told otherwise (accumulator_dtype);
    # optax 0.2.5 has no such argument and accumulates in the params' dtype. Both give a
    # float64 accumulator for these float64 params (checked), so the comparison is as tight.
    f64 = {"accumulator_dtype": jnp.float64}
    if "accumulator_dtype" not in inspect.signature(optax.MultiSteps).parameters:
        f64 = {}
    tx = optax.MultiSteps(adamod(1e-2), every_k_schedule=k, **f64)
    state = tx.init(params)
    for acc, param in zip(jax.tree.leaves(state.acc_grads), jax.tree.leaves(params)):
        assert acc.dtype == jax.dtypes.canonicalize_dtype(jnp.float64) == param.dtype
    update = jax.jit(tx.update)
    p = params
    for i, g in enumerate(grads):
        updates, state = update(g, state, p)
        if (i + 1) % k:  # accumulating: nothing moves
            chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
        p = optax.apply_updates(p, updates)

    means = [
        jax.tree.map(lambda *gs: sum(gs) / k, *grads[j : j + k]) for j in range(0, len(grads), k)
    ]
    expected, _ = _run(adamod(1e-2), params, means)
    chex.assert_trees_all_close(p, expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(p["w"], params["w"])


def test_apply_if_finite_skips_a_nan_step_without_touching_state():
    params = _params()
    grads = [_grads(i) for i in range(4)]
    bad = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grads[0])
    tx = optax.apply_if_finite(adamod(1e-2), max_consecutive_errors=3)
    state = tx.init(params)
    update = jax.jit(tx.update)
    p = params
    for i, g in enumerate(grads):
        if i == 2:  # a NaN gradient in the middle of the run
            updates, state = update(bad, state, p)
            chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
            assert int(state.notfinite_count) == 1 and not bool(state.last_finite)
        updates, state = update(g, state, p)
        p = optax.apply_updates(p, updates)
    assert int(state.total_notfinite) == 1
    chex.assert_tree_all_finite(p)
    expected, _ = _run(adamod(1e-2), params, grads)
    chex.assert_trees_all_equal(p, expected)


def test_clip_by_global_norm_in_a_chain_equals_clipping_by_hand():
    params = _params()
    grads = [jax.tree.map(lambda g: 10.0 * g, _grads(i)) for i in range(4)]
    got, _ = _run(optax.chain(optax.clip_by_global_norm(1.0), adamod(1e-2)), params, grads)

    def clip(g):
        norm = optax.tree.norm(g)
        return jax.tree.map(lambda x: x * jnp.minimum(1.0, 1.0 / norm), g)

    by_hand, _ = _run(adamod(1e-2), params, [clip(g) for g in grads])
    chex.assert_trees_all_close(got, by_hand, rtol=1e-13, atol=1e-15)
    unclipped, _ = _run(adamod(1e-2), params, grads)
    # AdaMod is nearly scale invariant, but not exactly (eps, changing norms).
    assert not np.array_equal(np.asarray(got["w"]), np.asarray(unclipped["w"]))


def test_constant_schedule_equals_float_learning_rate():
    params = _params()
    grads = [_grads(i) for i in range(4)]
    a, sa = _run(adamod(3e-3), params, grads)
    b, sb = _run(adamod(optax.constant_schedule(3e-3)), params, grads)
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal(sa, sb)


def test_schedule_is_evaluated_at_the_update_count():
    """Update k uses schedule(k); checked against the NumPy float64 reference."""
    from benchmarks import numpy_reference as reference

    sched = optax.warmup_cosine_decay_schedule(0.0, 1e-2, warmup_steps=3, decay_steps=10)
    params = _params()
    grads = [_grads(i) for i in range(8)]
    got, _ = _run(adamod(sched, weight_decay=0.1), params, grads)

    ref = reference.AdaModReleased()
    p = {k: np.asarray(v) for k, v in params.items()}
    for k, g in enumerate(grads):
        lr = float(jax.jit(sched)(jnp.int32(k)))  # the value the jitted step saw
        p = ref.step(p, {n: np.asarray(x) for n, x in g.items()}, lr, weight_decay=0.1)
    tol = dict(rtol=1e-9, atol=1e-12) if jax.config.jax_enable_x64 else dict(rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(got, p, **tol)


def test_inject_hyperparams_with_a_schedule_equals_the_schedule_inside():
    sched = optax.linear_schedule(1e-2, 1e-3, transition_steps=5)
    params = _params()
    grads = [_grads(i) for i in range(6)]
    plain, _ = _run(adamod(sched), params, grads)
    injected, state = _run(optax.inject_hyperparams(adamod)(learning_rate=sched), params, grads)
    chex.assert_trees_all_close(plain, injected, rtol=1e-12, atol=1e-15)
    # The injected learning rate is the schedule's value at the last count.
    np.testing.assert_allclose(state.hyperparams["learning_rate"], sched(5), rtol=1e-6)


def test_masked_updates_only_the_selected_leaves():
    params = _params()
    grads = [_grads(i) for i in range(3)]
    tx = optax.masked(adamod(1e-2), {"w": True, "b": False})
    state = tx.init(params)
    updates, _ = jax.jit(tx.update)(grads[0], state, params)
    # optax.masked passes masked-out updates through untouched.
    chex.assert_trees_all_equal(updates["b"], grads[0]["b"])
    alone, _ = _run(adamod(1e-2), {"w": params["w"]}, [{"w": grads[0]["w"]}])
    chex.assert_trees_all_equal(params["w"] + updates["w"], alone["w"])
    # Masked-out leaves hold no optimizer state at all.
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, optax.MaskedNode))
    assert any(isinstance(x, optax.MaskedNode) for x in leaves)


def test_map_params_reaches_every_params_shaped_state_leaf():
    """State is built by mapping over params, so map_params finds m, v and s."""
    params = _params()
    tx = adamod(1e-2, weight_decay=1e-3, mask={"w": True, "b": False})
    state = tx.init(params)
    seen = []

    def tag(p):
        seen.append(p.shape)
        return jnp.full(p.shape, 7.0, jnp.float32)

    mapped = optax.tree.map_params(tx, tag, state, transform_non_params=lambda x: x)
    # mu, nu and the rate average for each of the two leaves.
    assert sorted(seen) == sorted([(2, 3), (3,)] * 3)
    inner = mapped[0]
    for tree in (inner.mu, inner.nu, inner.rate_state.rate_avg):
        for leaf in jax.tree.leaves(tree):
            assert leaf.dtype == jnp.float32 and bool(jnp.all(leaf == 7.0))
    assert inner.count.dtype == jnp.int32


@pytest.mark.parametrize("jit", [False, True])
def test_none_leaves_pass_through(jit):
    params = {"w": jnp.ones(3), "frozen": None}
    grads = {"w": jnp.asarray([0.1, -0.2, 0.3]), "frozen": None}
    tx = adamod(1e-2, weight_decay=1e-2)
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    updates, state = update(grads, state, params)
    assert updates["frozen"] is None
    assert jnp.all(updates["w"] != 0)
    expected, _ = _run(adamod(1e-2, weight_decay=1e-2), {"w": params["w"]}, [{"w": grads["w"]}])
    chex.assert_trees_all_close(params["w"] + updates["w"], expected["w"], rtol=1e-15)


def test_masked_node_leaves_pass_through():
    """MaskedNode leaves (what optax.masked hands its inner optimizer) stay MaskedNode."""
    params = {"w": jnp.ones(3), "b": optax.MaskedNode()}
    grads = {"w": jnp.asarray([0.1, -0.2, 0.3]), "b": optax.MaskedNode()}
    tx = adamod(1e-2, weight_decay=1e-2)
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    assert isinstance(updates["b"], optax.MaskedNode)
    assert isinstance(state[0].mu["b"], optax.MaskedNode)
    assert jnp.all(updates["w"] != 0)
