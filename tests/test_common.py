"""Behaviours every optax optimizer is expected to have, for every optimizer of the package.

Mirrors optax's own common-optimizer tests: solves a parabola and Rosenbrock, accepts extra
args, wraps in inject_hyperparams with identical results, keeps dtypes, compiles once, works
under MultiSteps / apply_if_finite / masked / map_params, and a constant schedule equals a float.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.accuracy import FAMILY
from benchmarks.numpy_reference import AdaBound, AdaModPaper, AdaModReleased, DiffGrad, DiffMod

NAMES = sorted(FAMILY)


def _grad_step(tx, loss):
    @jax.jit
    def step(params, state):
        g = jax.grad(loss)(params)
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state

    return step


@pytest.mark.parametrize("name", NAMES)
def test_solves_parabola(name):
    target = jnp.array([1.0, -2.0, 0.5])
    loss = lambda p: jnp.sum((p["x"] - target) ** 2)  # noqa: E731
    tx = FAMILY[name](learning_rate=3e-2)
    params = {"x": jnp.zeros(3)}
    state, step = tx.init(params), _grad_step(tx, loss)
    for _ in range(3000):
        params, state = step(params, state)
    np.testing.assert_allclose(params["x"], target, atol=1e-2)


@pytest.mark.parametrize("name", NAMES)
def test_solves_rosenbrock(name):
    loss = lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2  # noqa: E731
    tx = FAMILY[name](learning_rate=1e-2)
    params = jnp.array([-1.0, 1.0])
    state, step = tx.init(params), _grad_step(tx, loss)
    for _ in range(8000):
        params, state = step(params, state)
    np.testing.assert_allclose(params, jnp.ones(2), atol=5e-2)


@pytest.mark.parametrize("name", NAMES)
def test_accepts_extra_args(name):
    tx = FAMILY[name]()
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    p = {"w": jnp.ones(3)}
    with_extra = tx.update(p, tx.init(p), p, some_extra_arg=1.0, loss=jnp.array(2.0))
    chex.assert_trees_all_equal(with_extra, tx.update(p, tx.init(p), p))  # and ignores them


def _trajectory(tx, params, steps=25):
    state = tx.init(params)
    out = []
    step = jax.jit(tx.update)
    for k in range(steps):
        g = jax.tree.map(lambda p: jnp.sin(p * (k + 1.0)) + 0.1 * k, params)
        u, state = step(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(params)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_identical(name):
    entry = FAMILY[name]
    params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32), "b": jnp.ones(2, jnp.float32)}
    plain = entry()
    injected = optax.inject_hyperparams(entry.fn)(**entry.base)
    chex.assert_trees_all_equal(_trajectory(plain, params), _trajectory(injected, params))


def _reference(name):
    """The NumPy float64 reference of ``FAMILY[name]`` at its settings."""
    return {
        "adamod": lambda: AdaModReleased(),
        "adamod_paper": lambda: AdaModPaper(),
        "adabound": lambda: AdaBound(base_lr=1e-2, final_lr=1e-3),
        "amsbound": lambda: AdaBound(base_lr=1e-2, final_lr=1e-3, amsbound=True),
        "diffgrad": lambda: DiffGrad(),
        "diffmod": lambda: DiffMod(),
    }[name]()


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_change_at_run_time(name):
    """A learning rate changed in the injected state takes effect from the next update and the
    state carries on: 8 updates (lr 1e-2, then 3e-3 from the 4th) equal the NumPy float64
    reference fed the same rates; then lr 0 gives a zero update."""
    entry = FAMILY[name]
    injected = optax.inject_hyperparams(entry.fn)(**entry.base)
    ref = _reference(name)
    idx = np.arange(6.0)
    p = {"w": jnp.asarray(np.linspace(-1.0, 1.0, 6))}  # params fixed: updates compared
    p64 = {"w": np.asarray(p["w"], np.float64)}
    state = injected.init(p)
    update = jax.jit(injected.update)
    for k in range(8):
        lr = 1e-2 if k < 3 else 3e-3
        state.hyperparams["learning_rate"] = jnp.asarray(lr, p["w"].dtype)
        g = np.sin(1.3 * idx + 0.7 * k) + 0.2
        u, state = update({"w": jnp.asarray(g, p["w"].dtype)}, state, p)
        if isinstance(ref, AdaBound):
            ref.base_lr = lr  # injected without base_lr: the bounds stay at final_lr (docs)
        want = ref.step(p64, {"w": g}, lr)["w"] - p64["w"]
        rtol = 1e-9 if jax.config.jax_enable_x64 else 1e-4
        np.testing.assert_allclose(u["w"], want, rtol=rtol, atol=0, err_msg=f"update {k}")
    state.hyperparams["learning_rate"] = jnp.asarray(0.0, p["w"].dtype)
    u, state = update(p, state, p)
    chex.assert_trees_all_equal(u, jax.tree.map(jnp.zeros_like, p))


@pytest.mark.parametrize("name", NAMES)
def test_constant_schedule_equals_float(name):
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    a = FAMILY[name](learning_rate=3e-3)
    b = FAMILY[name](learning_rate=optax.constant_schedule(3e-3))
    chex.assert_trees_all_close(_trajectory(a, params), _trajectory(b, params), rtol=1e-6)


DTYPES = [jnp.float16, jnp.bfloat16, jnp.float32, jnp.complex64]
if jax.config.jax_enable_x64:  # with x64 off (users' default) there are no 64-bit arrays
    DTYPES += [jnp.float64, jnp.complex128]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_dtypes_preserved_and_state_stable(name, dtype):
    tx = FAMILY[name]()
    params = {"w": (jnp.arange(6).reshape(2, 3) * 0.1 + 0.5).astype(dtype)}
    state = tx.init(params)
    dtypes0 = jax.tree.map(lambda x: x.dtype, state)
    step = jax.jit(tx.update)
    for k in range(3):
        grads = jax.tree.map(lambda p: (p * (k - 1.0) + 0.1).astype(dtype), params)
        u, state = step(grads, state, params)
        assert u["w"].dtype == jnp.dtype(dtype)
        assert bool(jnp.all(jnp.isfinite(u["w"])))
        chex.assert_trees_all_equal(jax.tree.map(lambda x: x.dtype, state), dtypes0)
        params = optax.apply_updates(params, u)
        assert params["w"].dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("name", NAMES)
def test_complex_params_optimise(name):
    target = jnp.array([1.0 + 2.0j, -0.5 - 1.0j])
    loss = lambda p: jnp.sum(jnp.abs(p - target) ** 2)  # noqa: E731
    tx = FAMILY[name](learning_rate=3e-2)
    params = jnp.zeros(2, jnp.complex64)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        g = jnp.conj(jax.grad(loss, holomorphic=False)(p))  # optax's convention for complex
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    for _ in range(3000):
        params, state = step(params, state)
    np.testing.assert_allclose(params, target, atol=2e-2)


@pytest.mark.parametrize("name", NAMES)
def test_no_recompilation(name):
    chex.clear_trace_counter()
    tx = FAMILY[name](learning_rate=optax.linear_schedule(1e-2, 1e-3, 100))
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = tx.init(params)
    for _ in range(4):
        params, state = step(params, state, jax.tree.map(jnp.ones_like, params))


@pytest.mark.parametrize("name", NAMES)
def test_multi_steps_accumulates(name):
    """MultiSteps(k=2) with the gradients g, g equals one step with g."""
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    g = {"w": jnp.linspace(0.3, -0.7, 5)}
    # float64 accumulator: optax's default float32 one rounds g, which shows wherever the step
    # is linear in g (an AdaBound rate clipped to its bound), not only scale-invariant Adam steps.
    # optax 0.2.5 has no accumulator_dtype and accumulates in the params' dtype: float64 too.
    import inspect

    f64 = {"accumulator_dtype": jnp.float64}
    if "accumulator_dtype" not in inspect.signature(optax.MultiSteps).parameters:
        f64 = {}
    ms = optax.MultiSteps(FAMILY[name](), every_k_schedule=2, **f64)
    single = FAMILY[name]()
    s = ms.init(params)
    assert s.acc_grads["w"].dtype == jax.dtypes.canonicalize_dtype(jnp.float64)
    u1, s = ms.update(g, s, params)
    chex.assert_trees_all_equal(u1, jax.tree.map(jnp.zeros_like, params))
    u2, s = ms.update(g, s, params)
    u_ref, _ = single.update(g, single.init(params), params)
    chex.assert_trees_all_close(u2, u_ref, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_apply_if_finite_skips_bad_steps(name):
    tx = optax.apply_if_finite(FAMILY[name](), max_consecutive_errors=5)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
    before = state
    u, state = tx.update({"w": jnp.array([1.0, jnp.nan, 1.0])}, state, params)
    chex.assert_trees_all_equal(u, {"w": jnp.zeros(3)})
    chex.assert_trees_all_equal(state.inner_state, before.inner_state)
    assert int(state.notfinite_count) == 1


@pytest.mark.parametrize("name", NAMES)
def test_none_leaves_and_masked_nodes_pass_through(name):
    params = {"a": jnp.ones(3), "b": None, "c": (jnp.ones(2), None)}
    tx = FAMILY[name]()
    state = tx.init(params)
    u, state = jax.jit(tx.update)(params, state, params)
    assert u["b"] is None and u["c"][1] is None
    assert u["a"].shape == (3,)

    masked = optax.masked(FAMILY[name](), {"a": True, "b": False, "c": (False, False)})
    ms = masked.init(params)
    u, ms = masked.update(params, ms, params)
    chex.assert_trees_all_equal(u["c"][0], params["c"][0])  # untouched where masked out


@pytest.mark.parametrize("name", NAMES)
def test_map_params_shapes_state(name):
    """optax.tree.map_params reaches every param-shaped leaf of the state (for shardings)."""
    tx = FAMILY[name]()
    params = {"w": jnp.ones((4, 2)), "b": jnp.ones(2)}
    state = tx.init(params)
    marked = optax.tree.map_params(tx, lambda x: jnp.full_like(x, 7.0), state)
    assert jax.tree.structure(marked) == jax.tree.structure(state)
    param_shaped = 0
    for leaf, ref in zip(jax.tree.leaves(marked), jax.tree.leaves(state), strict=True):
        if ref.shape in ((4, 2), (2,)):
            assert bool(jnp.all(leaf == 7.0))
            param_shaped += 1
    assert param_shaped >= 4  # at least both moments of both params were reached


@pytest.mark.parametrize("name", NAMES)
def test_state_is_namedtuple_pytree_of_arrays(name):
    state = FAMILY[name]().init({"w": jnp.ones(3)})
    for leaf in jax.tree.leaves(state):
        assert isinstance(leaf, jax.Array)
