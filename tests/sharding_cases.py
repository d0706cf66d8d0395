"""Sharding checks, run by ``test_sharding.py`` on 8 simulated CPU devices.

Not collected on its own (the file name does not start with ``test_``): the
device count must be set before JAX initialises, so the launcher runs
``python -m pytest tests/sharding_cases.py`` in a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``. Running this file by
hand with fewer devices fails at the first check.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from adamod_optax import adamod

N = 8


@pytest.fixture(autouse=True)
def _eight_devices():
    assert jax.device_count() >= N, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"


# --- layouts -----------------------------------------------------------------


def _mesh():
    return Mesh(np.array(jax.devices()[:N]).reshape(2, 4), ("data", "model"))


def _params():
    rng = np.random.default_rng(0)
    return {
        "embed": jnp.asarray(rng.normal(size=(16, 8))),
        "mlp": {
            "w_in": jnp.asarray(rng.normal(size=(8, 32))),
            "b_in": jnp.asarray(rng.normal(size=(32,))),
            "w_out": jnp.asarray(rng.normal(size=(32, 8))),
        },
        "scale": jnp.asarray(rng.normal(size=())),
    }


def _fsdp_specs(params):
    """FSDP-style: every leaf split along its first axis over all 8 devices."""
    return jax.tree.map(lambda p: P(("data", "model")) if p.ndim else P(), params)


def _tp_specs(params):
    """Megatron-style tensor parallel: w_in by columns, w_out by rows, over 'model'."""
    del params
    return {
        "embed": P("data", None),
        "mlp": {"w_in": P(None, "model"), "b_in": P("model"), "w_out": P("model", None)},
        "scale": P(),
    }


LAYOUTS = {"fsdp": _fsdp_specs, "tensor_parallel": _tp_specs}


def _shard(tree, specs, mesh):
    return jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), tree, specs)


def _tx():
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        adamod(optax.cosine_decay_schedule(1e-2, 100), b3=0.99, weight_decay=1e-2),
    )


def _assert_state_sharded_like_params(state, params, tx):
    """Each params-shaped state leaf (m, v, rate average) has its param's sharding."""
    checked = []

    def check(leaf, param):
        assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim), (
            leaf.sharding,
            param.sharding,
        )
        checked.append(leaf.ndim)
        return leaf

    optax.tree.map_params(tx, check, state, params, transform_non_params=lambda x: x)
    n_leaves = len(jax.tree.leaves(params))
    assert len(checked) == 3 * n_leaves  # mu, nu, rate_avg for every param
    assert any(not p.sharding.is_fully_replicated for p in jax.tree.leaves(params))
    for leaf in jax.tree.leaves(state):  # counters: scalars, replicated
        if leaf.ndim == 0:
            assert leaf.sharding.is_fully_replicated


# --- tests (run where 8 devices exist) ----------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_eager_init_shards_state_like_params(layout):
    mesh = _mesh()
    params = _shard(_params(), LAYOUTS[layout](_params()), mesh)
    tx = _tx()
    _assert_state_sharded_like_params(tx.init(params), params, tx)


def _state_shardings(tx, params, mesh):
    """out_shardings for a jitted init: params' shardings, scalars replicated."""
    param_shardings = jax.tree.map(lambda p: p.sharding, params)
    return optax.tree.map_params(
        tx,
        lambda _, sharding: sharding,
        jax.eval_shape(tx.init, params),
        param_shardings,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
        is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct),
    )


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_jitted_init_with_map_params_out_shardings(layout):
    mesh = _mesh()
    params = _shard(_params(), LAYOUTS[layout](_params()), mesh)
    tx = _tx()
    state = jax.jit(tx.init, out_shardings=_state_shardings(tx, params, mesh))(params)
    _assert_state_sharded_like_params(state, params, tx)
    chex.assert_trees_all_equal(state, tx.init(_params()))


def _loss(params, x):
    h = jnp.tanh(params["embed"][x] @ params["mlp"]["w_in"] + params["mlp"]["b_in"])
    return jnp.mean((h @ params["mlp"]["w_out"] * params["scale"]) ** 2)


def _run(tx, params, state, steps, batch_sharding=None):
    @jax.jit
    def step(params, state, x):
        grads = jax.grad(_loss)(params, x)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for k in range(steps):
        x = jnp.asarray(np.random.default_rng(k).integers(0, 16, size=(8,)))
        if batch_sharding is not None:
            x = jax.device_put(x, batch_sharding)
        params, state = step(params, state, x)
    return params, state


STEPS = 3


@functools.cache
def _single_device_training():
    """The reference run on one device, shared by the layouts."""
    tx = _tx()
    p1 = jax.device_put(_params(), jax.devices()[0])
    return _run(tx, p1, tx.init(p1), steps=STEPS)


@functools.cache
def _single_device_updates():
    tx = _update_tx()
    grads = _grads()
    update = jax.jit(tx.update)
    state = tx.init(_params())
    for _ in range(STEPS):
        updates, state = update(grads, state, _params())
    return updates, state


def _update_tx():
    return adamod(1e-2, b3=0.9, weight_decay=1e-2)


def _grads():
    return jax.tree.map(lambda p: jnp.sin(3.0 * p), _params())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_sharded_training_equals_single_device(layout):
    mesh = _mesh()
    tx = _tx()
    p1, s1 = _single_device_training()

    params = _shard(_params(), LAYOUTS[layout](_params()), mesh)
    state = jax.jit(tx.init, out_shardings=_state_shardings(tx, params, mesh))(params)
    p8, s8 = _run(tx, params, state, steps=STEPS, batch_sharding=NamedSharding(mesh, P("data")))
    # Sharded matmuls and the global norm may sum in another order: float64 close.
    chex.assert_trees_all_close(p8, p1, rtol=1e-12, atol=1e-14)
    chex.assert_trees_all_close(s8, s1, rtol=1e-12, atol=1e-14)
    _assert_state_sharded_like_params(s8, params, tx)
    for a, b in zip(jax.tree.leaves(p8), jax.tree.leaves(params), strict=True):
        assert a.sharding.is_equivalent_to(b.sharding, a.ndim)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_sharded_update_is_bit_identical_for_the_same_gradients(layout):
    """The optimizer itself is elementwise: same gradients, same bits."""
    mesh = _mesh()
    tx = _update_tx()
    specs = LAYOUTS[layout](_params())
    params = _shard(_params(), specs, mesh)
    sharded_grads = _shard(_grads(), specs, mesh)
    update = jax.jit(tx.update)
    s8 = tx.init(params)
    for _ in range(STEPS):
        u8, s8 = update(sharded_grads, s8, params)
    u1, s1 = _single_device_updates()
    chex.assert_trees_all_equal(u8, u1)
    chex.assert_trees_all_equal(s8, s1)
    _assert_state_sharded_like_params(s8, params, tx)


def test_explicit_axes_mesh_needs_no_out_shardings():
    """With explicit mesh axes shardings are part of the types: jit(tx.init) just works."""
    if not hasattr(jax, "set_mesh"):  # jax 0.4.35 has neither set_mesh nor AxisType
        pytest.skip("explicit mesh axes (jax.set_mesh, jax.sharding.AxisType) need a newer jax")
    AxisType = pytest.importorskip("jax.sharding").AxisType
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    with jax.set_mesh(mesh):
        params = _shard(_params(), _tp_specs(_params()), mesh)
        tx = _tx()
        state = jax.jit(tx.init)(params)
        _assert_state_sharded_like_params(state, params, tx)

        @jax.jit
        def step(params, state):
            grads = jax.tree.map(lambda p: jnp.sin(3.0 * p), params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params, state = step(params, state)
        _assert_state_sharded_like_params(state, params, tx)
