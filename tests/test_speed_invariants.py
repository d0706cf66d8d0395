"""The core's speed path changes no bit of the results and leaves no temporary.

``scale_by_bounded_adam`` recomputes the learning rates for the update (on
XLA:CPU) instead of reading them from a per-step temporary. These tests pin
that this is a pure speed change: trajectories with the recomputation forced
on and off are bit-identical, and the compiled step has no array-sized
temporary. No timing here (timings live in benchmarks/).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamod_optax as ao
from adamod_optax import _core as _transforms

SCHED = optax.linear_schedule(1e-3, 1e-2, 5)

CONFIGS = {
    "adamod": lambda: ao.adamod(1e-2, weight_decay=1e-2),
    "adamod_paper_schedule": lambda: ao.adamod(SCHED, algorithm="paper", b3=0.9),
    "adamod_bf16_state": lambda: ao.adamod(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16),
    "core_amsgrad_chain": lambda: optax.chain(
        ao.scale_by_bounded_adam(
            1e-2,
            amsgrad=True,
            rate_transform=optax.chain(
                ao.scale_by_momental_bound(0.9), ao.scale_by_momental_bound(0.5)
            ),
        ),
        optax.scale(-1.0),
    ),
    "core_identity": lambda: optax.chain(
        ao.scale_by_bounded_adam(1e-2, bias_correction="explicit"), optax.scale(-1.0)
    ),
}


def _trajectory(make, dtype, recompute, steps=8):
    old = _transforms.RECOMPUTE_RATES
    _transforms.RECOMPUTE_RATES = recompute
    try:
        tx = make()
        rng = np.random.default_rng(0)
        params = {"a": jnp.asarray(rng.normal(size=(5, 3)), dtype),
                  "b": jnp.asarray(rng.normal(size=(7,)), dtype)}
        state = tx.init(params)

        @jax.jit
        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        for k in range(steps):
            g = jax.tree.map(
                lambda x, k=k: jnp.asarray(
                    np.random.default_rng(k).standard_cauchy(x.shape), x.dtype), params)
            params, state = step(params, state, g)
        return jax.tree.leaves((params, state))
    finally:
        _transforms.RECOMPUTE_RATES = old


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rate_recomputation_is_bit_identical(name, dtype):
    fast = _trajectory(CONFIGS[name], dtype, True)
    plain = _trajectory(CONFIGS[name], dtype, False)
    assert len(fast) == len(plain)
    for a, b in zip(fast, plain, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("state_dtype", [None, jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_momental_bound_from_new_state_matches_update(dtype, state_dtype):
    tx = ao.scale_by_momental_bound(0.9, dtype=state_dtype)
    finish = getattr(tx.update, _transforms.BOUND_FROM_NEW_STATE)
    rng = np.random.default_rng(1)
    rates = {"w": jnp.asarray(rng.uniform(1e-4, 1e-1, size=(11,)), dtype)}
    state = tx.init(rates)
    for _ in range(3):
        bounded, new_state = tx.update(rates, state)
        again = finish(rates, state, new_state)
        assert np.asarray(again["w"]).tobytes() == np.asarray(bounded["w"]).tobytes()
        state = new_state


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU fusion property")
def test_donated_adamod_step_has_no_array_temporary():
    n = 1 << 16
    tx = ao.adamod(1e-3, weight_decay=1e-4)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    p = {"w": jax.ShapeDtypeStruct((n,), jnp.float32), "b": jax.ShapeDtypeStruct((n,), jnp.float32)}
    s = jax.eval_shape(tx.init, p)
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(p, s, p).compile()
    stats = compiled.memory_analysis()
    if stats is None:
        pytest.skip("no memory analysis on this backend")
    # The learning rates eta (n floats per leaf) must not be materialised.
    assert stats.temp_size_in_bytes < n * 4
