"""The two optax.inject_hyperparams pitfalls, and their documented fixes.

1. inject_hyperparams casts float hyperparameters to the params' dtype: with
   bfloat16 params b3 = 0.999 becomes exactly 1.0 and AdaMod never moves. The
   package refuses such decay rates with a ValueError that names the fix.
2. A callable ``mask`` not listed in ``static_args`` is called like a schedule
   (with the step count), which silently switches weight decay off (or on for
   everything). The package refuses the resulting mask.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamod_optax import adamod


def _quadratic(dtype):
    target = jnp.asarray(np.linspace(-1.0, 1.0, 8), dtype)
    params = {"w": jnp.zeros((8,), dtype), "b": jnp.ones((2, 2), dtype)}

    def loss(p):
        return jnp.sum((p["w"].astype(jnp.float32) - target.astype(jnp.float32)) ** 2) + jnp.sum(
            p["b"].astype(jnp.float32) ** 2
        )

    return params, loss


def _train(tx, params, loss, steps=30):
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_inject_with_16_bit_params_raises_and_names_the_fix(dtype):
    params, _ = _quadratic(dtype)
    tx = optax.inject_hyperparams(adamod)(learning_rate=1e-2)
    with pytest.raises(ValueError, match=r"hyperparam_dtype=jnp\.float32") as err:
        tx.init(params)
    assert "b1" in str(err.value) or "b3" in str(err.value) or "b2" in str(err.value)


def test_bf16_injected_b3_is_refused_by_name():
    """b3 alone injected as bfloat16 (b1, b2 static) is refused naming b3 and the fix, and so
    is a bfloat16 b3 passed directly; a float32 one is accepted."""
    params, _ = _quadratic(jnp.bfloat16)
    tx = optax.inject_hyperparams(adamod, static_args=("b1", "b2"))(learning_rate=1e-2, b3=0.999)
    with pytest.raises(ValueError, match=r"`b3` arrived as a bfloat16 array") as err:
        tx.init(params)
    assert "hyperparam_dtype=jnp.float32" in str(err.value)
    with pytest.raises(ValueError, match=r"`b3` arrived as a bfloat16 array"):
        adamod(1e-2, b3=jnp.asarray(0.999, jnp.bfloat16))
    adamod(1e-2, b3=jnp.asarray(0.999, jnp.float32))


def test_hyperparam_dtype_float32_trains_bf16_and_equals_the_plain_alias():
    params, loss = _quadratic(jnp.bfloat16)
    injected = optax.inject_hyperparams(adamod, hyperparam_dtype=jnp.float32)(
        learning_rate=5e-2, b3=0.9, weight_decay=1e-3
    )
    plain = adamod(5e-2, b3=0.9, weight_decay=1e-3)
    p_inj, s_inj = _train(injected, params, loss)
    p_plain, s_plain = _train(plain, params, loss)
    assert float(loss(p_inj)) < 0.5 * float(loss(params))
    chex.assert_trees_all_equal(p_inj, p_plain)
    # the moments and rate average are bit-identical; the recorded hyperparameters are the
    # float32 values inject_hyperparams passed (what the step used), the plain ones exact
    core_inj, core_plain = s_inj.inner_state[0], s_plain[0]
    chex.assert_trees_all_equal(core_inj._replace(rate_hyperparams=None),
                                core_plain._replace(rate_hyperparams=None))
    chex.assert_trees_all_close(core_inj.rate_hyperparams, core_plain.rate_hyperparams,
                                rtol=1e-7)
    chex.assert_trees_all_equal(s_inj.inner_state[1:], s_plain[1:])
    chex.assert_trees_all_equal_dtypes(p_inj, params)
    assert s_inj.hyperparams["b3"].dtype == jnp.float32
    assert float(s_inj.hyperparams["b3"]) == pytest.approx(0.9, rel=1e-7)


def test_learning_rate_changed_at_run_time_through_inject_hyperparams():
    params, loss = _quadratic(jnp.float32)
    tx = optax.inject_hyperparams(adamod)(learning_rate=1e-2)
    state = tx.init(params)
    grads = jax.grad(loss)(params)
    _, s1 = tx.update(grads, state, params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.0, jnp.float32)
    zero, _ = tx.update(grads, state, params)
    chex.assert_trees_all_equal(zero, jax.tree.map(jnp.zeros_like, zero))
    assert s1.hyperparams["learning_rate"] == pytest.approx(1e-2)


def _matrices_only(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


def test_callable_mask_without_static_args_raises():
    params, _ = _quadratic(jnp.float32)
    tx = optax.inject_hyperparams(adamod)(learning_rate=1e-2, weight_decay=0.1, mask=_matrices_only)
    with pytest.raises(ValueError, match=r"static_args=\('mask',\)"):
        tx.init(params)


def test_callable_mask_in_static_args_decays_only_the_masked_leaves():
    params, loss = _quadratic(jnp.float32)
    tx = optax.inject_hyperparams(adamod, static_args=("mask",))(
        learning_rate=1e-2, weight_decay=0.5, mask=_matrices_only
    )
    plain = adamod(1e-2, weight_decay=0.5, mask=_matrices_only)
    p_inj, _ = _train(tx, params, loss, steps=5)
    p_plain, _ = _train(plain, params, loss, steps=5)
    # Not bitwise: under jit XLA folds the plain alias's constant hyperparameters
    # (e.g. a division by a constant), the injected ones are run-time inputs.
    chex.assert_trees_all_close(p_inj, p_plain, rtol=1e-6, atol=1e-9)
    no_decay, _ = _train(adamod(1e-2), params, loss, steps=5)
    # "b" (a matrix) is decayed, "w" (a vector) is not.
    chex.assert_trees_all_close(p_inj["w"], no_decay["w"], rtol=1e-6, atol=1e-9)
    assert not np.array_equal(np.asarray(p_inj["b"]), np.asarray(no_decay["b"]))
