"""adamod in Flax training loops: NNX ``nnx.Optimizer`` and Linen ``TrainState``.

The runnable examples in ``examples/`` are imported and trained briefly (the
loss must fall), and each Flax path is checked against the plain functional
optax loop it should be equivalent to.

Supported Flax versions differ in two NNX names: ``nnx.Optimizer.update`` takes
``(model, grads)`` from Flax 0.11 and ``(grads)`` before (jax 0.4.35, the oldest
supported jax, installs at most Flax 0.10), and ``nnx.to_pure_dict`` is newer than
``State.to_pure_dict`` (deprecated since). ``nnx_update`` and ``pure_dict`` call
whichever the installed Flax has; the behaviour checked is the same on every one.
"""

import importlib.util
import inspect
import pathlib
import sys

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from adamod_optax import adamod

flax = pytest.importorskip("flax")
from flax import nnx  # noqa: E402
from flax.training import train_state  # noqa: E402

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
UPDATE_TAKES_MODEL = "model" in inspect.signature(nnx.Optimizer.update).parameters


def nnx_update(optimizer, model, grads):
    """One ``nnx.Optimizer`` step: ``update(model, grads)`` (Flax >= 0.11) or ``update(grads)``."""
    if UPDATE_TAKES_MODEL:
        return optimizer.update(model, grads)
    return optimizer.update(grads)


def pure_dict(state):
    """The plain nested dict of an ``nnx.State`` on every supported Flax."""
    if hasattr(nnx, "to_pure_dict"):
        return nnx.to_pure_dict(state)
    return state.to_pure_dict()


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Linen dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not UPDATE_TAKES_MODEL,
    reason="examples/flax_nnx_adamod.py is written for Flax >= 0.11 (optimizer.update(model, "
    "grads)); older Flax runs test_nnx_optimizer_equals_the_functional_optax_loop",
)
def test_nnx_example_trains():
    losses = _load("flax_nnx_adamod").train(steps=60)
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])


def test_linen_example_trains():
    losses = _load("flax_linen_adamod").train(steps=60)
    assert losses[-1] < 0.7 * losses[0], (losses[0], losses[-1])


def _regression():
    x = jnp.linspace(-2.0, 2.0, 32, dtype=jnp.float32)[:, None]
    return x, jnp.sin(x)


def test_nnx_optimizer_equals_the_functional_optax_loop():
    x, y = _regression()
    tx = adamod(1e-2, b3=0.9, weight_decay=1e-2)

    model = nnx.Sequential(
        nnx.Linear(1, 8, rngs=nnx.Rngs(0)), nnx.tanh, nnx.Linear(8, 1, rngs=nnx.Rngs(1))
    )
    graphdef, params0 = nnx.split(model, nnx.Param)
    params0 = jax.tree.map(jnp.copy, params0)

    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        nnx_update(optimizer, model, grads)
        return loss

    losses = [float(nnx_step(model, optimizer)) for _ in range(20)]
    assert losses[-1] < losses[0]
    assert int(optimizer.step[...]) == 20

    def loss_fn(params):
        return jnp.mean((nnx.merge(graphdef, params)(x) - y) ** 2)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state = params0, tx.init(params0)
    for _ in range(20):
        params, state = step(params, state)
    got = nnx.state(model, nnx.Param)
    chex.assert_trees_all_equal(
        jax.tree.map(jnp.asarray, pure_dict(got)),
        jax.tree.map(jnp.asarray, pure_dict(params)),
    )


def test_linen_train_state_equals_the_functional_optax_loop():
    from flax import linen as nn

    x, y = _regression()
    model = nn.Sequential([nn.Dense(8), nn.tanh, nn.Dense(1)])
    params0 = model.init(jax.random.key(0), x)["params"]
    tx = adamod(1e-2, b3=0.9, weight_decay=1e-2)

    def loss_fn(params):
        return jnp.mean((model.apply({"params": params}, x) - y) ** 2)

    @jax.jit
    def ts_step(state):
        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    state = train_state.TrainState.create(apply_fn=model.apply, params=params0, tx=tx)
    losses = []
    for _ in range(20):
        state, loss = ts_step(state)
        losses.append(float(loss))
    assert losses[-1] < losses[0]

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params, opt_state = params0, tx.init(params0)
    for _ in range(20):
        params, opt_state = step(params, opt_state)
    chex.assert_trees_all_equal(state.params, params)
    chex.assert_trees_all_equal(state.opt_state, opt_state)
