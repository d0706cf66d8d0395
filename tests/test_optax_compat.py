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
from benchmarks.accuracy import decay_matrices

OPTIMIZERS = {
    "adamod": ao.adamod,
    "adabound": ao.adabound,
    "amsbound": ao.amsbound,
    "diffgrad": ao.diffgrad,
    "diffmod": ao.diffmod,
}


def _positional(fn):
    """Names of the parameters that ``fn`` takes positionally, in order."""
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD]


# learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask (optax 0.2.x)
ADAMW_POSITIONAL = _positional(optax.adamw)


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


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_signature_matches_adamw(name):
    params = list(inspect.signature(OPTIMIZERS[name]).parameters.values())
    positional = _positional(OPTIMIZERS[name])
    assert positional == ADAMW_POSITIONAL  # the same names in the same order as optax.adamw
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
    """A positional call written for optax.adamw (arguments in ``optax.adamw``'s order) equals
    the keyword call, numerically."""
    fn = OPTIMIZERS[name]
    values = dict(learning_rate=3e-3, b1=0.8, b2=0.99, eps=1e-6, eps_root=0.0, mu_dtype=None,
                  weight_decay=1e-2, mask=decay_matrices)
    positional = fn(*[values[n] for n in ADAMW_POSITIONAL])
    keywords = fn(**values)
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


# --- one step count --------------------------------------------------------------------------

SCHEDULE = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 50)
DECAY_SCHEDULE = optax.linear_schedule(1e-2, 1e-3, 10)


def _hyper(name, scheduled):
    if not scheduled:
        return dict(learning_rate=3e-3)
    kw = dict(learning_rate=SCHEDULE)
    if name in ("adabound", "amsbound"):
        kw["base_lr"] = 1e-2  # a warmup from 0 needs it
    return kw


COUNT_CASES = [
    (name, decay)
    for name in sorted(OPTIMIZERS)
    for decay in ["none", "wd", "wd_mask", "wd_schedule_mask", "decoupled"]
    if not (decay == "decoupled" and name in ("adamod", "diffmod"))  # always decoupled there
]


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "schedule"])
@pytest.mark.parametrize(("name", "decay"), COUNT_CASES)
def test_one_count_is_the_number_of_updates(name, decay, scheduled):
    kw = _hyper(name, scheduled)
    if decay != "none":
        kw["weight_decay"] = DECAY_SCHEDULE if decay == "wd_schedule_mask" else 1e-2
    if "mask" in decay:
        kw["mask"] = decay_matrices
    if decay == "decoupled":
        kw["weight_decay_mode"] = "decoupled"
    tx = OPTIMIZERS[name](**kw)
    for steps in (0, 1, 4):
        _, state = _run(tx, steps=steps)
        assert int(optax.tree.get(state, "count")) == steps
    # no counter kept twice: the only int32 scalar in the state is that count
    ints = [x for x in jax.tree.leaves(state) if x.dtype == jnp.int32]
    assert len(ints) == 1


def test_count_like_optax_adamw():
    _, ours = _run(ao.adamod(1e-3, weight_decay=1e-4), steps=3)
    _, theirs = _run(optax.adamw(1e-3), steps=3)
    assert int(optax.tree.get(ours, "count")) == int(optax.tree.get(theirs, "count")) == 3


def test_count_with_inject_hyperparams_and_multisteps():
    """inject_hyperparams adds its own count (as it does to optax.adamw); the optimizer's is
    the one inside. MultiSteps counts mini-steps separately; the count is of real updates."""
    tx = optax.inject_hyperparams(ao.adamod)(learning_rate=1e-3, weight_decay=1e-4)
    _, state = _run(tx, steps=3)
    assert int(optax.tree.get(state.inner_state, "count")) == 3
    tx = optax.MultiSteps(ao.adabound(1e-3, weight_decay=1e-4), every_k_schedule=2)
    _, state = _run(tx, steps=5)
    assert int(optax.tree.get(state, "count")) == 2


def test_add_decoupled_weight_decay_counts_only_with_a_schedule():
    p = _params()
    plain = ao.add_decoupled_weight_decay(1e-2, 1e-3)
    assert plain.init(p) == optax.EmptyState()
    scheduled = ao.add_decoupled_weight_decay(DECAY_SCHEDULE, 1e-3)
    state = scheduled.init(p)
    for k in range(3):
        u, state = scheduled.update(_grads(k), state, p)
        want = jax.tree.map(lambda g, x, k=k: g + DECAY_SCHEDULE(k) * 1e-3 * x, _grads(k), p)
        chex.assert_trees_all_close(u, want, rtol=1e-6)
    assert int(state.count) == 3


def test_weight_decay_schedule_follows_the_core_count():
    """The aliases' decay has no counter: it evaluates its schedule at the core's count, so
    a decay schedule equals decaying by hand with the value at each update."""
    p = _params()
    tx = ao.adamod(1e-2, weight_decay=DECAY_SCHEDULE, b3=0.9)
    ref = ao.adamod(1e-2, b3=0.9)
    s, r = tx.init(p), ref.init(p)
    for k in range(4):
        u, s = tx.update(_grads(k), s, p)
        v, r = ref.update(_grads(k), r, p)
        want = jax.tree.map(lambda a, x, k=k: a - DECAY_SCHEDULE(k) * 1e-2 * x, v, p)
        chex.assert_trees_all_close(u, want, rtol=1e-5, atol=1e-9)
