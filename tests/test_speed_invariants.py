"""The core's fast path changes no bit of the results and leaves no temporary.

``scale_by_bounded_adam(..., fast_path=...)`` chooses how the step is compiled:
``"recompute"`` (the CPU default) computes the learning rates a second time for
the update instead of reading them from a per-step temporary; ``"plain"`` is
the straightforward form. These tests pin that the choice is a pure speed
change (trajectories are bit-identical on a tree with odd leaf sizes, mixed
dtypes and ``None`` leaves) and read from the *compiled program* which
compositions keep the fast path: a kept fast path leaves no array-sized
temporary in the donated step, a lost one materialises the rates. No timing
here (timings live in benchmarks/).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamod_optax as ao

SCHED = optax.linear_schedule(1e-3, 1e-2, 5)

CONFIGS = {
    "adamod": lambda fp: ao.adamod(1e-2, weight_decay=1e-2, fast_path=fp),
    "adamod_paper_schedule": lambda fp: ao.adamod(
        SCHED, algorithm="paper", b3=0.9, fast_path=fp
    ),
    "adamod_bf16_state": lambda fp: ao.adamod(
        1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16, fast_path=fp
    ),
    "core_amsgrad_chain_bounds": lambda fp: optax.chain(
        ao.scale_by_bounded_adam(
            1e-2,
            amsgrad=True,
            rate_transform=ao.chain_bounds(
                ao.clip_by_dynamic_bound(1e-2, final_lr=0.1, upper=False),
                ao.scale_by_momental_bound(0.9),
                ao.scale_by_momental_bound(0.5, dtype=jnp.float32),
            ),
            fast_path=fp,
        ),
        optax.scale(-1.0),
    ),
    "core_identity": lambda fp: optax.chain(
        ao.scale_by_bounded_adam(1e-2, bias_correction="explicit", fast_path=fp),
        optax.scale(-1.0),
    ),
    "adabound": lambda fp: ao.adabound(1e-2, fast_path=fp),
    "amsbound": lambda fp: ao.amsbound(1e-2, weight_decay=1e-3, fast_path=fp),
    "diffgrad": lambda fp: ao.diffgrad(1e-2, fast_path=fp),
    "diffmod": lambda fp: ao.diffmod(1e-2, weight_decay=1e-3, fast_path=fp),
}


def _mixed_params():
    """Odd leaf sizes (no vector-width multiple), four float dtypes, None leaves."""
    rng = np.random.default_rng(0)
    return {
        "f32": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
        "f32_odd": jnp.asarray(rng.normal(size=(1031,)), jnp.float32),
        "bf16": jnp.asarray(rng.normal(size=(17,)), jnp.bfloat16),
        "f16": jnp.asarray(rng.normal(size=(3, 7)), jnp.float16),
        "f64": jnp.asarray(rng.normal(size=(9,)), jnp.float64),
        "scalar": jnp.asarray(0.5, jnp.float32),
        "none": None,
        "nested": {"none": None, "w": jnp.asarray(rng.normal(size=(2, 129)), jnp.float32)},
    }


def _trajectory(tx, params, steps=8, donate=True):
    params = jax.tree.map(jnp.copy, params)  # donated below
    state = tx.init(params)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    step = jax.jit(step, donate_argnums=(0, 1) if donate else ())
    for k in range(steps):
        g = jax.tree.map(
            lambda x, k=k: jnp.asarray(
                np.random.default_rng(k).standard_cauchy(x.shape) * 1e-2, x.dtype), params)
        params, state = step(params, state, g)
    return jax.tree_util.tree_leaves_with_path((params, state))


def _assert_same_bits(a, b):
    assert len(a) == len(b)
    for (path, x), (_, y) in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, jax.tree_util.keystr(path)
        assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


# Where one kernel adds two products, LLVM contracts one of them into a fused
# multiply-add, and which one depends on the kernel's shape: the fast path's
# update kernel (rates computed inline) and the plain one (rates loaded) may
# choose differently. Decoupled weight decay (r * m + wd * lr * theta) and a
# rate average stored in bfloat16 (recomputed as b3 * s + (1 - b3) * eta in
# the update) do; there the paths agree to 1 ulp (measured: a few elements in
# a thousand, at some leaf sizes only). See docs/guides/performance.md.
ULP_LEVEL = {"adamod", "adamod_bf16_state"}


def _ulps(x, y):
    """Largest distance in units in the last place, and the share of elements that differ."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.itemsize not in (2, 4, 8) or x.size == 0:
        return 0, 0.0
    ints = {2: np.int16, 4: np.int32, 8: np.int64}[x.dtype.itemsize]
    a, b = x.view(ints).astype(np.int64), y.view(ints).astype(np.int64)
    return int(np.abs(a - b).max()), float(np.mean(a != b))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fast_path_is_bit_identical_on_mixed_tree(name):
    params = _mixed_params()
    fast = _trajectory(CONFIGS[name]("recompute"), params)
    plain = _trajectory(CONFIGS[name]("plain"), params)
    auto = _trajectory(CONFIGS[name]("auto"), params)
    _assert_same_bits(auto, fast if jax.default_backend() == "cpu" else plain)
    if name not in ULP_LEVEL:
        _assert_same_bits(fast, plain)
        return
    for (path, x), (_, y) in zip(fast, plain, strict=True):
        worst, share = _ulps(x, y)
        assert worst <= 1 and share < 0.01, (jax.tree_util.keystr(path), worst, share)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", ["adamod", "core_amsgrad_chain_bounds"])
def test_fast_path_is_bit_identical_per_dtype(name, dtype):
    rng = np.random.default_rng(1)
    params = {"a": jnp.asarray(rng.normal(size=(5, 3)), dtype),
              "b": jnp.asarray(rng.normal(size=(7,)), dtype)}
    _assert_same_bits(
        _trajectory(CONFIGS[name]("recompute"), params, donate=False),
        _trajectory(CONFIGS[name]("plain"), params, donate=False),
    )


@pytest.mark.parametrize("state_dtype", [None, jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_momental_bound_from_new_state_matches_update(dtype, state_dtype):
    tx = ao.scale_by_momental_bound(0.9, dtype=state_dtype)
    rng = np.random.default_rng(1)
    rates = jnp.asarray(rng.uniform(1e-4, 1e-1, size=(11,)), dtype)
    state = tx.init(rates)
    for _ in range(3):
        bounded, new_state = tx.update(rates, state)
        step = tx.split(state)
        again = step.bound_from_new(rates, (state.rate_avg,), (new_state.rate_avg,))
        assert np.asarray(again).tobytes() == np.asarray(bounded).tobytes()
        state = new_state


def test_chain_bounds_equals_optax_chain():
    bounds = (
        ao.clip_by_dynamic_bound(SCHED, final_lr=0.05, lower=False, base_lr=1e-2),
        ao.scale_by_momental_bound(0.9),
    )
    ours, theirs = ao.chain_bounds(*bounds), optax.chain(*bounds)
    assert isinstance(ours, ao.RateBound) and not isinstance(theirs, ao.RateBound)
    rates = {"w": jnp.linspace(1e-4, 1e-1, 7), "b": None}
    s1, s2 = ours.init(rates), theirs.init(rates)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)  # checkpoints interchangeable
    for k in range(3):
        count = jnp.asarray(k, jnp.int32)  # the core passes its step count to the bounds
        (b1, s1), (b2, s2) = ours.update(rates, s1, count=count), theirs.update(
            rates, s2, count=count)
        assert np.asarray(b1["w"]).tobytes() == np.asarray(b2["w"]).tobytes()
    with pytest.raises(TypeError, match="RateBound"):
        ao.chain_bounds(optax.identity())


def test_fast_path_argument_is_checked():
    with pytest.raises(ValueError, match="fast_path"):
        ao.adamod(1e-3, fast_path="fast")
    with pytest.raises(ValueError, match="chain_bounds"):
        ao.scale_by_bounded_adam(
            1e-3, rate_transform=optax.chain(ao.scale_by_momental_bound()),
            fast_path="recompute",
        )


# --- which compositions keep the fast path, read from the compiled program ---

N = 1 << 16  # elements per leaf; a kept fast path has no temporary this large


def _chain_of(bound):
    return lambda fp: optax.chain(
        ao.scale_by_bounded_adam(1e-3, rate_transform=bound, fast_path=fp), optax.scale(-1.0)
    )


COMPOSITIONS = {
    # name: (factory fast_path -> tx, keeps the fast path under "auto")
    "adamod": (lambda fp: ao.adamod(1e-3, weight_decay=1e-4, fast_path=fp), True),
    "chain_bounds": (
        _chain_of(ao.chain_bounds(
            ao.clip_by_dynamic_bound(1e-3, upper=False), ao.scale_by_momental_bound())),
        True,
    ),
    "optax.chain of bounds": (
        _chain_of(optax.chain(
            ao.clip_by_dynamic_bound(1e-3, upper=False), ao.scale_by_momental_bound())),
        False,
    ),
    "optax.chain of one bound": (_chain_of(optax.chain(ao.scale_by_momental_bound())), False),
    "optax.masked": (
        lambda fp: optax.masked(
            ao.adamod(1e-3, fast_path=fp), {"w": True, "b": True, "frozen": False}),
        True,
    ),
    "inject_hyperparams": (
        lambda fp: optax.inject_hyperparams(ao.adamod)(
            learning_rate=1e-3, b3=0.999, fast_path=fp),
        True,
    ),
    "MultiSteps": (lambda fp: optax.MultiSteps(ao.adamod(1e-3, fast_path=fp), 4), False),
    "diffmod": (lambda fp: ao.diffmod(1e-3, fast_path=fp), True),
}


def _compiled_step(tx):
    params = {
        "w": jax.ShapeDtypeStruct((N,), jnp.float32),
        "b": jax.ShapeDtypeStruct((N,), jnp.float32),
        "frozen": jax.ShapeDtypeStruct((8,), jnp.float32),
    }

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = jax.eval_shape(tx.init, params)
    return jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()


def _temp_bytes(compiled):
    stats = compiled.memory_analysis()
    if stats is None:
        pytest.skip("no memory analysis on this backend")
    return stats.temp_size_in_bytes


def _temp_arrays(tx):
    """Array-sized temporaries (rounded down) of the compiled, donated step."""
    return _temp_bytes(_compiled_step(tx)) // (N * 4)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU fusion property")
@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_which_compositions_keep_the_fast_path(name):
    make, keeps = COMPOSITIONS[name]
    plain = _temp_arrays(make("plain"))
    auto = _temp_arrays(make("auto"))
    if name == "MultiSteps":
        # optax.MultiSteps computes the inner update every step and selects it with
        # the accumulation branch, so every state array is a temporary on every path;
        # there the fast path's barrier'd copy of v adds one array instead of saving
        # the rates (documented: use fast_path="plain" under MultiSteps).
        assert auto == plain + 1, (auto, plain)
        return
    # diffmod keeps one temporary per leaf on every path: the friction's previous
    # gradient (the update reads the old one while the new state overwrites its
    # donated buffer); see docs/guides/performance.md.
    floor = 2 if name == "diffmod" else 0
    assert plain == floor + 2, plain  # the rates of both leaves, materialised
    assert auto == (floor if keeps else plain), (auto, plain)
