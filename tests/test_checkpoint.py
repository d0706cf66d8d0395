"""Save params + optimizer state mid-run with orbax-checkpoint, restore, resume.

The resumed run must equal the uninterrupted one bit for bit: the checkpoint
must hold everything (step counts, moments, the rate average, schedule
position and the hyperparameters injected by ``optax.inject_hyperparams``,
including one changed by hand during the run).
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamod_optax import adamod

ocp = pytest.importorskip("orbax.checkpoint")

TOTAL, SAVE_AT, CHANGE_WD_AT = 12, 5, 3


def _make_tx():
    schedule = optax.warmup_cosine_decay_schedule(0.0, 2e-2, warmup_steps=4, decay_steps=TOTAL)
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(adamod, static_args=("mask",))(
            learning_rate=schedule,
            b3=0.99,
            weight_decay=1e-2,
            mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p),
        ),
    )


def _batch(k):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(x @ np.array([[1.0], [-2.0], [0.5]], np.float32))


def _init_params():
    return {"w": jnp.zeros((3, 1), jnp.float32), "b": jnp.zeros((1,), jnp.float32)}


def _step_fn(tx):
    def loss(p, x, y):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def _train(params, opt_state, step, start, stop):
    for k in range(start, stop):
        if k == CHANGE_WD_AT:  # a run-time hyperparameter change that must survive
            opt_state[1].hyperparams["weight_decay"] = jnp.asarray(5e-2, jnp.float32)
        params, opt_state = step(params, opt_state, *_batch(k))
    return params, opt_state


def test_resume_from_orbax_checkpoint_is_bit_identical(tmp_path):
    tx = _make_tx()
    params0 = _init_params()
    full_params, full_state = _train(params0, tx.init(params0), _step_fn(tx), 0, TOTAL)

    # Interrupted run: save at SAVE_AT, then forget everything.
    params, opt_state = _train(params0, tx.init(params0), _step_fn(tx), 0, SAVE_AT)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "step_5", {"params": params, "opt_state": opt_state})
    checkpointer.wait_until_finished()
    saved_leaves = [np.asarray(x) for x in jax.tree.leaves(opt_state)]
    del params, opt_state

    # Resume as a new process would: rebuild the optimizer, restore into its
    # abstract state (shapes, dtypes and the NamedTuple structure).
    tx = _make_tx()
    abstract = jax.tree.map(
        ocp.utils.to_shape_dtype_struct,
        {"params": _init_params(), "opt_state": tx.init(_init_params())},
    )
    restored = ocp.StandardCheckpointer().restore(tmp_path / "step_5", abstract)
    opt_state = restored["opt_state"]
    assert jax.tree.structure(opt_state) == jax.tree.structure(tx.init(_init_params()))
    for a, b in zip(saved_leaves, jax.tree.leaves(opt_state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(opt_state[1].count) == SAVE_AT  # inject_hyperparams' schedule count
    assert float(opt_state[1].hyperparams["weight_decay"]) == np.float32(5e-2)

    params, opt_state = _train(restored["params"], opt_state, _step_fn(tx), SAVE_AT, TOTAL)
    chex.assert_trees_all_equal(params, full_params)
    chex.assert_trees_all_equal(opt_state, full_state)
    chex.assert_trees_all_equal_dtypes(opt_state, full_state)


def test_nnx_model_and_optimizer_round_trip(tmp_path):
    nnx = pytest.importorskip("flax.nnx")
    x, y = _batch(0)
    # Flax >= 0.11: optimizer.update(model, grads); older Flax (the only one jax 0.4.35
    # installs): optimizer.update(grads). nnx.to_pure_dict replaced State.to_pure_dict.
    takes_model = "model" in inspect.signature(nnx.Optimizer.update).parameters
    pure = nnx.to_pure_dict if hasattr(nnx, "to_pure_dict") else nnx.State.to_pure_dict

    def fresh():
        model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
        sched = optax.linear_schedule(1e-2, 1e-3, transition_steps=10)
        return model, nnx.Optimizer(model, adamod(sched, b3=0.9), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        if takes_model:
            optimizer.update(model, grads)
        else:
            optimizer.update(grads)

    model, optimizer = fresh()
    for _ in range(8):
        step(model, optimizer)
    expected = nnx.state(model)

    model, optimizer = fresh()
    for _ in range(3):
        step(model, optimizer)
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(tmp_path / "nnx", {"model": nnx.state(model), "opt": nnx.state(optimizer)})
    ckpt.wait_until_finished()

    model, optimizer = fresh()
    target = {"model": nnx.state(model), "opt": nnx.state(optimizer)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = ocp.StandardCheckpointer().restore(tmp_path / "nnx", abstract)
    nnx.update(model, restored["model"])
    nnx.update(optimizer, restored["opt"])
    assert int(optimizer.step[...]) == 3
    for _ in range(5):
        step(model, optimizer)
    chex.assert_trees_all_equal(
        pure(nnx.state(model)), pure(expected)
    )
