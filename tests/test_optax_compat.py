"""The surface a user coming from optax touches: adamw-compatible signatures, refused
options, and one step count readable with ``optax.tree.get(opt_state, "count")``.

Runs with float64 on and off (see tests/repository/test_x64_off.py).
"""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import adamod_optax as ao
from tests.helpers import decay_matrices

OPTIMIZERS = {
    "adamod": ao.adamod,
    "adabound": ao.adabound,
    "amsbound": ao.amsbound,
    "diffgrad": ao.diffgrad,
    "diffmod": ao.diffmod,
}
ADAMW_POSITIONAL = ["learning_rate", "b1", "b2", "eps", "eps_root", "mu_dtype", "weight_decay",
                    "mask"]


def _params():
    return {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.25, 0.1])}


def _grads(k):
    return jax.tree.map(lambda p: jnp.sin(3.0 * p + k) + 0.1 * k, _params())


def _run(tx, steps=5, params=None):
    params = _params() if params is None else params
    state = tx.init(params)
    step = jax.jit(tx.update)
    for k in range(steps):
        updates, state = step(_grads(k), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_adamw_positional_order_is_optax():
    assert list(inspect.signature(optax.adamw).parameters)[:8] == ADAMW_POSITIONAL


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_signature_matches_adamw(name):
    params = list(inspect.signature(OPTIMIZERS[name]).parameters.values())
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == ADAMW_POSITIONAL
    adamw = inspect.signature(optax.adamw).parameters
    for p in params[1:8]:  # same defaults as optax.adamw except weight_decay (0, as released)
        if p.name != "weight_decay":
            assert p.default == adamw[p.name].default, p.name
    assert params[6].default == 0.0
    keyword_only = {p.name for p in params if p.kind == p.KEYWORD_ONLY}
    assert "nesterov" in keyword_only
    specific = {"b3", "len_memory", "algorithm", "final_lr", "gamma", "base_lr",
                "weight_decay_mode", "friction_version"}
    assert not specific & set(positional)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_adamw_positional_call_means_the_same(name):
    """``fn(lr, b1, b2, eps, eps_root, mu_dtype, wd, mask)`` as written for optax.adamw."""
    fn = OPTIMIZERS[name]
    positional = fn(3e-3, 0.8, 0.99, 1e-6, 0.0, None, 1e-2, decay_matrices)
    keywords = fn(learning_rate=3e-3, b1=0.8, b2=0.99, eps=1e-6, eps_root=0.0, mu_dtype=None,
                  weight_decay=1e-2, mask=decay_matrices)
    chex.assert_trees_all_equal(_run(positional), _run(keywords))
    default = fn(3e-3)  # and b1/b2/eps really arrived as b1/b2/eps
    assert not jnp.allclose(_run(positional)[0]["b"], _run(default)[0]["b"])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_specific_arguments_are_keyword_only(name):
    with pytest.raises(TypeError, match="positional"):
        OPTIMIZERS[name](1e-3, 0.9, 0.999, 1e-8, 0.0, None, 0.0, None, 0.99)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_nesterov_is_refused_by_name(name):
    with pytest.raises(ValueError, match=rf"{name}\(\).*nesterov"):
        OPTIMIZERS[name](1e-3, nesterov=True)
    OPTIMIZERS[name](1e-3, nesterov=False)  # optax's default: accepted


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_eps_root_is_validated(name):
    with pytest.raises(ValueError, match="eps_root"):
        OPTIMIZERS[name](1e-3, eps_root=-1.0)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mu_dtype_positional_sets_the_first_moment_dtype(name):
    _, state = _run(OPTIMIZERS[name](1e-3, 0.9, 0.999, 1e-8, 0.0, jnp.bfloat16), steps=1)
    mu = optax.tree.get(state, "mu")
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(mu))
