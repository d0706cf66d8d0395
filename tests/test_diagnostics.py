"""Effective-learning-rate diagnostics against a NumPy float64 computation of the true rates.

The true rates are recomputed here from the gradient sequence alone (m, v, the rate average
and AdaBound's bounds), with non-default hyperparameters, schedules, both AdaMod algorithms,
bfloat16 state, masks and every composition users wrap optimizers in. The diagnostics are
never told the hyperparameters of this package's optimizers: they must read them from the
state. Runs with float64 on and off (see tests/repository/test_x64_off.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamod_optax as ao

SCHED = optax.warmup_cosine_decay_schedule(0.0, 2e-2, 5, 60, 1e-3)
HP = dict(b1=0.8, b2=0.99, eps=1e-6)
STEPS = 12


def _params():
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.normal(size=(8, 16)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(16,)), jnp.float32),
        "frozen": jnp.ones((5,), jnp.float32),  # never gets a gradient
    }


def _grad_seq(steps=STEPS):
    rng = np.random.default_rng(1)
    out = []
    for _ in range(steps):
        g = {}
        for name, p in _params().items():
            x = rng.normal(size=p.shape) * 10.0 ** rng.uniform(-3, 1, size=p.shape)
            x[rng.uniform(size=p.shape) < 0.1] = 0.0  # some elements get no gradient this step
            g[name] = (np.zeros(p.shape) if name == "frozen" else x).astype(np.float32)
        out.append(g)
    return out


def _lrs(lr, steps=STEPS):
    if callable(lr):
        f = jax.jit(lr)
        return [float(f(jnp.int32(k))) for k in range(steps)]
    return [lr] * steps


def true_rates(grads, lrs, *, b1, b2, eps, eps_root=0.0, b3=None, algorithm="released",
               amsgrad=False, clip=None):
    """NumPy float64: (eta, bounded) of the last of ``len(grads)`` updates."""
    m = {k: np.zeros(g.shape) for k, g in grads[0].items()}
    v = {k: np.zeros(x.shape) for k, x in m.items()}
    vmax = {k: np.zeros(x.shape) for k, x in m.items()}
    s = {k: np.zeros(x.shape) for k, x in m.items()}
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        eta, bounded = {}, {}
        for k in m:
            gk = g[k].astype(np.float64)
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk * gk
            vmax[k] = np.maximum(vmax[k], v[k])
            vv = vmax[k] if amsgrad else v[k]
            if algorithm == "released":
                e = lr * np.sqrt(1 - b2**t) / (1 - b1**t) / (np.sqrt(vv + eps_root) + eps)
            else:
                e = lr / (np.sqrt(vv / (1 - b2**t) + eps_root) + eps)
            x = e
            if clip is not None:
                final_lr, gamma, base = clip
                final = final_lr * lr / base
                x = np.clip(x, final * (1 - 1 / (gamma * t + 1)), final * (1 + 1 / (gamma * t)))
            if b3 is not None:
                s[k] = b3 * s[k] + (1 - b3) * x
                x = np.minimum(x, s[k])
            eta[k], bounded[k] = e, x
    return eta, bounded


def _train(tx, steps=STEPS, params=None, jit=True):
    params = _params() if params is None else params
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    for g in _grad_seq(steps):
        g = jax.tree.map(jnp.asarray, g)
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
    return state


def _flat(tree, keys=("w", "b", "frozen")):
    return np.concatenate([np.ravel(np.asarray(tree[k], np.float64)) for k in keys if k in tree])


def check(summary, eta, bounded, *, rtol=2e-5, tolerance_elements=1, grads=None):
    """The summary agrees with the true rates over the elements it should count."""
    e, b = _flat(eta), _flat(bounded)
    keep = np.concatenate([np.ravel(np.ones(eta[k].shape, bool) & (k != "frozen"))
                           for k in ("w", "b", "frozen")])
    if grads is not None:
        keep &= _flat(grads) != 0
    assert int(summary.num_counted) == keep.sum()
    np.testing.assert_allclose(float(summary.maximum), b[keep].max(), rtol=rtol)
    np.testing.assert_allclose(float(summary.unbounded_maximum), e[keep].max(), rtol=rtol)
    active = (np.abs(b - e) > 1e-5 * e)[keep]
    assert abs(float(summary.fraction_bounded) * keep.sum() - active.sum()) <= tolerance_elements
    np.testing.assert_allclose(np.asarray(summary.quantiles)[[0, -1]],
                               [b[keep].min(), b[keep].max()], rtol=rtol)


def check_rates(got, want, rtol=2e-5):
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k], np.float64), want[k], rtol=rtol)


# --- the reproduction from the issue ------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["released", "paper"])
@pytest.mark.parametrize("lr", [SCHED, 3e-3], ids=["schedule", "constant"])
def test_adamod_non_default_hyperparameters(algorithm, lr):
    """Before: max rate and bound activity from silent defaults (0.9/0.999/1e-8, folded)."""
    tx = ao.adamod(lr, **HP, b3=0.9, algorithm=algorithm)
    state = _train(tx)
    eta, bounded = true_rates(_grad_seq(), _lrs(lr), **HP, b3=0.9, algorithm=algorithm)
    check(ao.learning_rate_summary(state), eta, bounded)
    check(jax.jit(ao.learning_rate_summary)(state), eta, bounded)
    got_eta, got_bounded = ao.effective_learning_rates(state)
    check_rates(got_eta, eta)
    check_rates(got_bounded, bounded)


@pytest.mark.parametrize("algorithm", ["released", "paper"])
def test_b3_zero_bound_never_active(algorithm):
    """b3 = 0 makes s_t = eta_t: the bound cannot act, and must not be reported as acting
    (jitted and not, though a recomputation may differ from the step in the last bits)."""
    state = _train(ao.adamod(SCHED, **HP, b3=0.0, algorithm=algorithm))
    for f in (ao.learning_rate_summary, jax.jit(ao.learning_rate_summary)):
        assert float(f(state).fraction_bounded) == 0.0


def test_eps_root_is_read_from_the_state():
    tx = ao.adamod(SCHED, **HP, eps_root=1e-3, b3=0.9, algorithm="paper")
    eta, bounded = true_rates(_grad_seq(), _lrs(SCHED), **HP, eps_root=1e-3, b3=0.9,
                              algorithm="paper")
    check(ao.learning_rate_summary(_train(tx)), eta, bounded)


def test_bfloat16_state():
    """nu stored in bfloat16 is what the step used (exact); s_t stored in bfloat16 is rounded
    from the float32 value the step compared against (so activity within rounding is not
    counted)."""
    tx = ao.adamod(SCHED, **HP, b3=0.9, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    state = _train(tx)
    eta, bounded = true_rates(_grad_seq(), _lrs(SCHED), **HP, b3=0.9)
    check(ao.learning_rate_summary(state), eta, bounded, rtol=3e-2, tolerance_elements=8)


def test_bfloat16_params():
    p = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _params())
    state = _train(ao.adamod(3e-3, **HP, b3=0.9), params=p)
    s = ao.learning_rate_summary(state)
    assert np.isfinite(float(s.maximum)) and 0 < float(s.fraction_bounded) < 1


def test_grads_mask_and_never_updated_elements():
    state = _train(ao.adamod(SCHED, **HP, b3=0.9))
    last = jax.tree.map(jnp.asarray, _grad_seq()[-1])
    eta, bounded = true_rates(_grad_seq(), _lrs(SCHED), **HP, b3=0.9)
    check(ao.learning_rate_summary(state, grads=last), eta, bounded, grads=_grad_seq()[-1])
    everything = ao.learning_rate_summary(state, skip_never_updated=False)
    assert int(everything.num_counted) == 8 * 16 + 16 + 5


# --- the family ---------------------------------------------------------------------------------

@pytest.mark.parametrize("amsgrad", [False, True])
def test_adabound_bounds_are_recorded(amsgrad):
    fn = ao.amsbound if amsgrad else ao.adabound
    tx = fn(3e-3, **HP, final_lr=0.05, gamma=0.2)
    eta, bounded = true_rates(_grad_seq(), _lrs(3e-3), **HP, amsgrad=amsgrad,
                              clip=(0.05, 0.2, 3e-3))
    state = _train(tx)
    s = ao.learning_rate_summary(state)
    check(s, eta, bounded)
    assert 0 < float(s.fraction_bounded) < 1


def test_adabound_schedule_with_base_lr():
    tx = ao.adabound(SCHED, **HP, final_lr=0.05, gamma=0.2, base_lr=2e-2)
    eta, bounded = true_rates(_grad_seq(), _lrs(SCHED), **HP, clip=(0.05, 0.2, 2e-2))
    check(ao.learning_rate_summary(_train(tx)), eta, bounded)


@pytest.mark.parametrize("name", ["diffgrad", "diffmod"])
def test_friction_family(name):
    """Friction scales the momentum, not the rate: the rates are AdaMod's / Adam's."""
    kw = dict(b3=0.9) if name == "diffmod" else dict(weight_decay_mode="decoupled")
    tx = getattr(ao, name)(SCHED, **HP, weight_decay=1e-2, **kw)
    eta, bounded = true_rates(_grad_seq(), _lrs(SCHED), **HP, b3=kw.get("b3"))  # decoupled
    check(ao.learning_rate_summary(_train(tx)), eta, bounded)


def test_chained_bounds_apply_in_order():
    rate_bound = optax.chain(
        ao.clip_by_dynamic_bound(3e-3, final_lr=0.05, gamma=0.2, upper=False),
        ao.scale_by_momental_bound(0.9),
    )
    tx = optax.chain(ao.scale_by_bounded_adam(3e-3, **HP, rate_transform=rate_bound),
                     optax.scale(-1.0))
    state = _train(tx)
    got_eta, got_bounded = ao.effective_learning_rates(state)
    grads, lrs = _grad_seq(), _lrs(3e-3)
    eta, _ = true_rates(grads, lrs, **HP)
    # lower bound, then the average of the raised rates, then the min
    want = {}
    s = {k: np.zeros(g.shape) for k, g in grads[0].items()}
    for t in range(1, STEPS + 1):
        e_t, _ = true_rates(grads[:t], lrs[:t], **HP)
        for k in s:
            lower = 0.05 * (1 - 1 / (0.2 * t + 1))
            x = np.maximum(e_t[k], lower)
            s[k] = 0.9 * s[k] + 0.1 * x
            want[k] = np.minimum(x, s[k])
    check_rates(got_eta, eta)
    check_rates(got_bounded, want)


# --- compositions -------------------------------------------------------------------------------

def _reference():
    return true_rates(_grad_seq(), _lrs(SCHED), **HP, b3=0.9)


def test_inside_a_chain():
    tx = optax.chain(optax.clip_by_global_norm(1e6), ao.adamod(SCHED, **HP, b3=0.9))
    check(ao.learning_rate_summary(_train(tx)), *_reference())


def test_inject_hyperparams():
    """inject_hyperparams evaluates the schedule and passes the value: the core records it."""
    tx = optax.inject_hyperparams(ao.adamod)(learning_rate=SCHED, **HP, b3=0.9)
    check(ao.learning_rate_summary(_train(tx)), *_reference())


def test_multisteps():
    grads = _grad_seq(2 * STEPS)
    tx = optax.MultiSteps(ao.adamod(SCHED, **HP, b3=0.9), every_k_schedule=2)
    state = _train(tx, steps=2 * STEPS)
    means = [jax.tree.map(lambda a, b: ((a.astype(np.float64) + b) / 2).astype(np.float32),
                          grads[2 * i], grads[2 * i + 1]) for i in range(STEPS)]
    # elements without gradient in both mini-steps: skip (zero mean ~ a zero gradient)
    eta, bounded = true_rates(means, _lrs(SCHED), **HP, b3=0.9)
    check(ao.learning_rate_summary(state), eta, bounded)


def test_masked():
    tx = optax.masked(ao.adamod(SCHED, **HP, b3=0.9), {"w": True, "b": True, "frozen": False})
    state = _train(tx)
    eta, bounded = _reference()
    last = jax.tree.map(jnp.asarray, _grad_seq()[-1])
    s = ao.learning_rate_summary(state, grads=last)  # grads shaped like the params
    check(s, eta, bounded, grads=_grad_seq()[-1])


def test_optax_adam_needs_its_hyperparameters():
    state = _train(optax.adam(SCHED, b1=0.8, b2=0.99, eps=1e-6))
    with pytest.raises(ValueError, match=r"`b2`.*`eps`.*inject_hyperparams"):
        ao.learning_rate_summary(state, SCHED)
    with pytest.raises(ValueError, match="learning_rate"):
        ao.effective_learning_rates(state, b2=0.99, eps=1e-6)
    eta, _ = true_rates(_grad_seq(), _lrs(SCHED), **HP, algorithm="paper")
    s = ao.learning_rate_summary(state, SCHED, b2=0.99, eps=1e-6)
    check(s, eta, eta)
    assert float(s.fraction_bounded) == 0.0


@pytest.mark.parametrize("factory", [optax.adam, optax.adamw])
def test_optax_adam_under_inject_hyperparams(factory):
    tx = optax.inject_hyperparams(factory)(learning_rate=SCHED, b1=0.8, b2=0.99, eps=1e-6)
    eta, _ = true_rates(_grad_seq(), _lrs(SCHED), **HP, algorithm="paper")
    check(ao.learning_rate_summary(_train(tx)), eta, eta)


def test_hyperparameters_for_this_package_are_refused():
    state = _train(ao.adamod(SCHED, **HP, b3=0.9), steps=2)
    with pytest.raises(ValueError, match="records the hyperparameters"):
        ao.learning_rate_summary(state, SCHED)
    with pytest.raises(ValueError, match="`eps`"):
        ao.effective_learning_rates(state, eps=1e-8)


def _nnx_update(optimizer, model, grads):
    """``update(model, grads)`` from Flax 0.11, ``update(grads)`` on Flax 0.10 (jax 0.4.35)."""
    import inspect

    if "model" in inspect.signature(type(optimizer).update).parameters:
        return optimizer.update(model, grads)
    return optimizer.update(grads)


def _nnx_grads(nnx, model, g):
    """The gradients ``g`` (a dict of arrays) in the structure ``nnx.grad`` gives on this Flax:
    the gradient of ``sum_k <param_k, g_k>``, which is ``g`` exactly."""
    return nnx.grad(lambda m: sum(jnp.vdot(getattr(m, k)[...], jnp.asarray(v))
                                  for k, v in g.items()))(model)


def test_nnx_optimizer_inside_nnx_jit():
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self):
            p = _params()
            self.w, self.b, self.frozen = (nnx.Param(p[k]) for k in ("w", "b", "frozen"))

    for tx in (ao.adamod(SCHED, **HP, b3=0.9),
               optax.inject_hyperparams(ao.adamod)(learning_rate=SCHED, **HP, b3=0.9)):
        model = Model()
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, opt, g):
            _nnx_update(opt, model, g)
            return ao.learning_rate_summary(opt)

        for g in _grad_seq():
            inside = step(model, opt, _nnx_grads(nnx, model, g))
        check(inside, *_reference())
        check(ao.learning_rate_summary(opt.opt_state), *_reference())  # eagerly, OptArray leaves


# --- bounds of your own: reported exactly as applied, or refused -------------------------------

CAP = 0.5


def _cap_bound():
    """The stateless cap of rate_bound's docstring: rates at most 0.5."""
    return ao.rate_bound(
        lambda params: (),
        lambda state, params=None, **kw: ao.BoundStep(
            arrays=(),
            bound=lambda eta: (jnp.minimum(eta, CAP), ()),
            bound_from_new=lambda eta, old, new: jnp.minimum(eta, CAP),
            finish=lambda new: ()),
        name="cap")


def _ema_cap_bound(decay=0.7, factor=0.8):
    """A stateful bound: c_t = decay c_{t-1} + (1 - decay) eta_t, output min(eta_t, factor c_t)."""
    def split(state, params=None, **kw):
        def bound(eta, c):
            c_new = decay * c + (1 - decay) * eta
            return jnp.minimum(eta, factor * c_new), (c_new,)

        return ao.BoundStep(
            arrays=(state,),
            bound=bound,
            bound_from_new=lambda eta, old, new: jnp.minimum(eta, factor * new[0]),
            finish=lambda new: new[0])

    return ao.rate_bound(lambda params: jax.tree.map(jnp.zeros_like, params), split,
                         name="ema_cap")


def _numpy_user_bounds(kind):
    """NumPy float64: eta and the bounded rates of the last update for the two user bounds."""
    grads, lrs = _grad_seq(), _lrs(3e-3)
    c = {k: np.zeros(g.shape) for k, g in grads[0].items()}
    for t in range(1, STEPS + 1):
        eta, _ = true_rates(grads[:t], lrs[:t], **HP)
        if kind == "cap":
            bounded = {k: np.minimum(e, CAP) for k, e in eta.items()}
        else:
            for k in c:
                c[k] = 0.7 * c[k] + 0.3 * eta[k]
            bounded = {k: np.minimum(eta[k], 0.8 * c[k]) for k in c}
    return eta, bounded


@pytest.mark.parametrize("kind", ["cap", "ema_cap"])
@pytest.mark.parametrize("fast_path", ["plain", "recompute"])
def test_user_bound_is_reported_as_applied(kind, fast_path):
    bound = _cap_bound() if kind == "cap" else _ema_cap_bound()
    tx = optax.chain(ao.scale_by_bounded_adam(3e-3, **HP, rate_transform=bound,
                                              fast_path=fast_path), optax.scale(-1.0))
    state = _train(tx)
    eta, bounded = _numpy_user_bounds(kind)
    got_eta, got_bounded = ao.effective_learning_rates(state, rate_transform=bound)
    check_rates(got_eta, eta)
    check_rates(got_bounded, bounded)
    # the bound acts on part of the elements, so bounded differs from eta there
    assert 0 < np.mean(_flat(bounded) < _flat(eta)) < 1
    check(jax.jit(lambda s: ao.learning_rate_summary(s, rate_transform=bound))(state),
          eta, bounded)
    # the step really applied these rates: its update is -bounded * m (folded form)
    params = _params()
    g = jax.tree.map(jnp.asarray, _grad_seq(STEPS + 1)[-1])
    updates, new_state = jax.jit(tx.update)(g, state, params)
    _, applied = ao.effective_learning_rates(new_state, rate_transform=bound)
    core = new_state[0]
    for k in ("w", "b"):
        np.testing.assert_allclose(np.asarray(updates[k]),
                                   -np.asarray(applied[k]) * np.asarray(core.mu[k]), rtol=1e-6)


@pytest.mark.parametrize("kind", ["cap", "ema_cap"])
def test_user_bound_without_rate_transform_is_refused(kind):
    """Before: the cap's rates (up to ~3,690 here) were returned as `bounded`."""
    bound = _cap_bound() if kind == "cap" else _ema_cap_bound()
    state = _train(optax.chain(ao.scale_by_bounded_adam(3e-3, **HP, rate_transform=bound),
                               optax.scale(-1.0)))
    for f in (ao.effective_learning_rates, ao.learning_rate_summary):
        with pytest.raises(ValueError, match="rate_transform="):
            f(state)


def test_chain_of_user_and_package_bounds():
    bound = ao.chain_bounds(_cap_bound(), ao.scale_by_momental_bound(0.9))
    state = _train(optax.chain(ao.scale_by_bounded_adam(3e-3, **HP, rate_transform=bound),
                               optax.scale(-1.0)))
    with pytest.raises(ValueError, match="rate_transform="):
        ao.effective_learning_rates(state)
    grads, lrs = _grad_seq(), _lrs(3e-3)
    s = {k: np.zeros(g.shape) for k, g in grads[0].items()}
    want = {}
    for t in range(1, STEPS + 1):
        e_t, _ = true_rates(grads[:t], lrs[:t], **HP)
        for k in s:
            x = np.minimum(e_t[k], CAP)  # the cap, then AdaMod's average of what it let through
            s[k] = 0.9 * s[k] + 0.1 * x
            want[k] = np.minimum(x, s[k])
    _, got = ao.effective_learning_rates(state, rate_transform=bound)
    check_rates(got, want)


def test_package_bound_passed_as_rate_transform_agrees():
    bound = ao.scale_by_momental_bound(0.9)
    state = _train(optax.chain(ao.scale_by_bounded_adam(SCHED, **HP, rate_transform=bound),
                               optax.scale(-1.0)))
    by_state = ao.effective_learning_rates(state)
    by_code = ao.effective_learning_rates(state, rate_transform=bound)
    for a, b in zip(jax.tree.leaves(by_state), jax.tree.leaves(by_code)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    check_rates(by_code[1], _reference()[1])


@pytest.mark.parametrize("rate_transform", [
    optax.scale(0.5),  # state EmptyState: a stateless plain transformation
    optax.chain(ao.scale_by_momental_bound(0.9), optax.scale(0.5)),
], ids=["scale", "bound_then_scale"])
def test_plain_rate_transformation_is_refused(rate_transform):
    """A plain optax transformation over rates cannot say what it applied: an error, never
    its input rates labelled bounded."""
    state = _train(optax.chain(
        ao.scale_by_bounded_adam(3e-3, **HP, rate_transform=rate_transform),
        optax.scale(-1.0)))
    with pytest.raises(ValueError, match="cannot describe itself"):
        ao.learning_rate_summary(state)
    with pytest.raises(TypeError, match="must be the RateBound"):
        ao.effective_learning_rates(state, rate_transform=rate_transform)


def test_no_bound_reports_the_rates_unbounded():
    """rate_transform=None (DiffGrad's core): state None, bounded == eta, never 'active'."""
    state = _train(optax.chain(ao.scale_by_bounded_adam(3e-3, **HP), optax.scale(-1.0)))
    assert state[0].rate_state is None
    eta, bounded = ao.effective_learning_rates(state)
    check_rates(eta, true_rates(_grad_seq(), _lrs(3e-3), **HP)[0])
    check_rates(bounded, true_rates(_grad_seq(), _lrs(3e-3), **HP)[0])
    assert float(ao.learning_rate_summary(state).fraction_bounded) == 0.0


def test_rate_bound_needs_its_split():
    """RateBound(init, update) with a plain update cannot be built (it used to be, and then
    failed with an AttributeError deep inside fast_path='auto' on CPU)."""
    with pytest.raises(TypeError, match="rate_bound"):
        ao.RateBound(lambda p: (), lambda rates, state, params=None, **kw: (rates, state))
    with pytest.raises(ValueError, match="at least one bound"):
        ao.chain_bounds()


def test_rate_transform_is_refused_for_optax_adam():
    state = _train(optax.adam(SCHED, b1=0.8, b2=0.99, eps=1e-6), steps=2)
    with pytest.raises(ValueError, match="rate_transform"):
        ao.effective_learning_rates(state, SCHED, b2=0.99, eps=1e-6,
                                    rate_transform=_cap_bound())


def test_nnx_state_of_the_optimizer():
    """nnx.state(optimizer), the object the checkpoint guide saves, is accepted; where it
    cannot be read unambiguously the error says what to pass."""
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self):
            p = _params()
            self.w, self.b, self.frozen = (nnx.Param(p[k]) for k in ("w", "b", "frozen"))

    for tx in (ao.adamod(SCHED, **HP, b3=0.9), ao.amsbound(3e-3, **HP),
               optax.inject_hyperparams(ao.adamod)(learning_rate=SCHED, **HP, b3=0.9)):
        model = Model()
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
        for g in _grad_seq(3):
            _nnx_update(opt, model, _nnx_grads(nnx, model, g))
        want = ao.effective_learning_rates(opt)
        got = ao.effective_learning_rates(nnx.state(opt))
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert int(ao.learning_rate_summary(nnx.state(opt)).count) == 3
    opt = nnx.Optimizer(Model(), ao.diffgrad(3e-3), wrt=nnx.Param)
    with pytest.raises(ValueError, match=r"pass the nnx\.Optimizer itself"):
        ao.learning_rate_summary(nnx.state(opt))
