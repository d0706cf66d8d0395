"""The building blocks: the Adam-style core, learning-rate bounds, weight decay.

The family of optimizers in this package differs only in what happens to
Adam's per-parameter learning rates ("rates") before they meet the momentum.
The core, :func:`scale_by_bounded_adam`, owns the moments and bias
corrections; it hands the rates to a *rate transformation*, an ordinary
``optax.GradientTransformation`` whose "updates" are learning rates, and
multiplies what comes back by the momentum. Bounds are rate transformations:

* :func:`scale_by_momental_bound` (AdaMod): ``min(eta_t, EMA_b3(eta)_t)``;
* :func:`clip_by_dynamic_bound` (AdaBound): ``clip(eta_t, lower_t, upper_t)``.

Because they are ordinary transformations they chain with each other (and
with optax's own), for example AdaBound's lower bound with AdaMod's upper
bound::

    rate_bound = optax.chain(
        clip_by_dynamic_bound(1e-3, final_lr=0.1, upper=False),
        scale_by_momental_bound(b3=0.999),
    )
    tx = optax.chain(
        scale_by_bounded_adam(1e-3, rate_transform=rate_bound),
        optax.scale(-1.0),
    )
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import optax

from adamod_optax import _base

BiasCorrection = Literal["folded", "explicit"]


class ScaleByBoundedAdamState(NamedTuple):
    """State of :func:`scale_by_bounded_adam`.

    Attributes:
      count: int32 scalar, the number of updates applied so far. It saturates
        at the int32 maximum instead of wrapping (``optax.safe_increment``).
      mu: first moment ``m_t``, an EMA (decay ``b1``) of the gradients; same
        tree as the params, dtype ``mu_dtype`` or the param's dtype.
      nu: second moment ``v_t``, an EMA (decay ``b2``) of ``|g|^2``; same tree,
        dtype ``nu_dtype`` or the param's real dtype.
      nu_max: AMSGrad's running maximum of ``nu`` (same tree and dtype), or
        ``None`` when ``amsgrad=False``.
      rate_state: the state of ``rate_transform`` (for AdaMod the
        :class:`ScaleByMomentalBoundState` holding the rate average).
      rate_hyperparams: float vector ``[6]`` (float64 when ``jax_enable_x64``
        is on, else float32): what the last update formed its rates with,
        in this order: ``lr_t`` (the learning rate in force, schedule or
        ``inject_hyperparams`` included), ``b1``, ``b2``, ``eps``,
        ``eps_root`` and 1.0 for ``bias_correction="explicit"`` (0.0 for
        ``"folded"``); zeros before the first update. It lets
        :func:`adamod_optax.effective_learning_rates` recompute the rates as
        the step did, never from defaults. (One vector, not
        named fields, so that ``optax.tree.get(state, "b1")`` still finds
        ``inject_hyperparams``' value alone.)
    """

    count: chex.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: Optional[optax.Updates]
    rate_state: optax.OptState
    rate_hyperparams: chex.Array


# The entries of ScaleByBoundedAdamState.rate_hyperparams, in order.
RATE_HYPERPARAMS = ("learning_rate", "b1", "b2", "eps", "eps_root", "explicit")


def _record_dtype() -> jnp.dtype:
    """The widest float JAX gives: every hyperparameter value fits exactly."""
    return jnp.dtype(jnp.result_type(float))


# Private protocol between the core and its rate transformations (speed only):
# a rate transformation's ``update`` may carry, under this attribute, a
# function ``(rates, old_state, new_state) -> bounded rates`` that returns
# exactly what ``update(rates, old_state)[0]`` returns. The core then feeds it
# a second, separately computed copy of the rates; see scale_by_bounded_adam.
BOUND_FROM_NEW_STATE = "_adamod_optax_bound_from_new_state"

# "auto": recompute the rates on the CPU backend only (GPU compilers fuse the
# two consumers into one kernel); True/False force it (tests, benchmarks).
RECOMPUTE_RATES: Any = "auto"


def _recompute_rates() -> bool:
    if RECOMPUTE_RATES == "auto":
        return jax.default_backend() == "cpu"
    return bool(RECOMPUTE_RATES)


def _abs_sq(g: jax.Array) -> jax.Array:
    if jnp.iscomplexobj(g):
        return jnp.real(g) ** 2 + jnp.imag(g) ** 2
    return g * g


def scale_by_bounded_adam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
    *,
    rate_transform: Optional[optax.GradientTransformation] = None,
    bias_correction: BiasCorrection = "folded",
    amsgrad: bool = False,
    nu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam's moments and per-parameter learning rates, with a pluggable bound.

    With ``t`` the 1-based step, ``lr_t = learning_rate(t - 1)`` and ``g`` the
    incoming update (gradient)::

      m_t   = b1 m_{t-1} + (1 - b1) g
      v_t   = b2 v_{t-1} + (1 - b2) |g|^2          (AMSGrad: v_t <- max(v_t, v_max))

    ``bias_correction="folded"`` (Adam's "efficient" form, used by the released
    AdaMod, AdaBound and DiffGrad code; eps sits on the *uncorrected* sqrt(v))::

      eta_t = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t + eps_root) + eps),  d_t = m_t

    ``bias_correction="explicit"`` (the AdaMod paper's Algorithm 2, optax.adam)::

      eta_t = lr_t / (sqrt(v_t / (1 - b2^t) + eps_root) + eps),  d_t = m_t / (1 - b1^t)

    ``eps_root`` sits inside the square root as in ``optax.scale_by_adam``
    (there on the bias-corrected ``v``; in the folded form, like ``eps``, on the
    uncorrected ``v_t``). At its default 0 nothing is added, so the released
    algorithms are reproduced exactly.

    The per-parameter rates ``eta_t`` (a tree like the params) go through
    ``rate_transform`` (identity when ``None``), called as
    ``rate_transform.update(eta_t, rate_state, params, count=count,
    **extra_args)`` where ``count`` is this core's step count before the
    update (the 0-based index of the update, as schedules see it): rate
    transformations read the step from there instead of keeping their own
    counter, so the optimizer has a single ``count``. The output is
    ``rate_transform(eta_t) * d_t``: a *positive* step that already includes
    the learning rate. Negate it (``optax.scale(-1.0)``) to descend; do not
    chain ``optax.scale_by_learning_rate`` after it.

    Moments of float16/bfloat16 leaves are computed in float32 and cast to
    their storage dtype; updates have the dtype of the incoming gradients.

    Args:
      learning_rate: a float or an optax schedule ``count -> lr`` (update ``k``,
        0-based, uses ``learning_rate(k)``).
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to ``sqrt(v_t)`` (or ``sqrt(v_hat_t)``), >= 0.
      eps_root: added to ``v_t`` (or ``v_hat_t``) inside the square root, >= 0
        (as in ``optax.scale_by_adam``; useful when differentiating through
        the optimizer).
      mu_dtype: storage dtype of ``m_t`` (default: the param's dtype).
      rate_transform: a transformation over learning rates, for example
        :func:`scale_by_momental_bound` or :func:`clip_by_dynamic_bound`.
      bias_correction: ``"folded"`` or ``"explicit"``, see above.
      amsgrad: keep the running maximum of ``v_t`` and use it for the rates.
      nu_dtype: storage dtype of ``v_t`` (default: the param's real dtype).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`ScaleByBoundedAdamState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from adamod_optax import scale_by_bounded_adam, scale_by_momental_bound
      >>> tx = optax.chain(
      ...     scale_by_bounded_adam(0.1, rate_transform=scale_by_momental_bound(0.9)),
      ...     optax.scale(-1.0))
      >>> params = {"w": jnp.ones(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(3)}, state, params)
      >>> print(updates["w"])  # (1 - b3) times Adam's first step of -lr
      [-0.01 -0.01 -0.01]
    """
    _base.check_learning_rate(learning_rate)
    _base.check_decay_rate("b1", b1)
    _base.check_decay_rate("b2", b2)
    _base.check_range("eps", eps, low=0.0)
    _base.check_eps_root(eps_root)
    if bias_correction not in ("folded", "explicit"):
        raise ValueError(
            f"`bias_correction` must be 'folded' or 'explicit', got {bias_correction!r}."
        )
    eps_value = _base.concrete_float(eps)
    eps_positive = eps_value is not None and eps_value > 0
    add_eps_root = _base.concrete_float(eps_root) != 0.0  # traced: always added
    rate_tx = optax.with_extra_args_support(
        optax.identity() if rate_transform is None else rate_transform
    )

    def init_fn(params: optax.Params) -> ScaleByBoundedAdamState:
        return ScaleByBoundedAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=_base.zeros_like(params, mu_dtype),
            nu=_base.zeros_like(params, nu_dtype, real=True),
            nu_max=_base.zeros_like(params, nu_dtype, real=True) if amsgrad else None,
            rate_state=rate_tx.init(params),
            rate_hyperparams=jnp.zeros([len(RATE_HYPERPARAMS)], _record_dtype()),
        )

    def update_fn(
        updates: optax.Updates,
        state: ScaleByBoundedAdamState,
        params: Optional[optax.Params] = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, ScaleByBoundedAdamState]:
        _base.check_updates(updates, state.mu, "scale_by_bounded_adam")
        count_inc = optax.safe_increment(state.count)
        lr = _base.at_count(learning_rate, state.count)

        def leaf_dtype(g, m, v):
            return _base.compute_dtype(g.dtype, m.dtype, v.dtype)

        mu = _base.tree_map(
            lambda g, m, v: _base.ema(b1, m, g, leaf_dtype(g, m, v)).astype(m.dtype),
            updates, state.mu, state.nu,
        )
        nu = _base.tree_map(
            lambda g, m, v: _base.ema(
                b2, v, _abs_sq(g.astype(leaf_dtype(g, m, v))),
                _base.real_dtype(leaf_dtype(g, m, v)),
            ).astype(v.dtype),
            updates, state.mu, state.nu,
        )
        if amsgrad:
            nu_max = _base.tree_map(jnp.maximum, state.nu_max, nu)
            nu_for_rate = nu_max
        else:
            nu_max = None
            nu_for_rate = nu

        def nonzero(den):
            # eps = 0 and v = 0 (only zero, or underflowing, gradients so far):
            # rate lr_t * c / 1 instead of +inf, so the update is 0 * rate = 0
            # (not NaN) and the rate average stays finite. A no-op for eps > 0.
            return den if eps_positive else jnp.where(den == 0, 1, den)

        def rate_and_direction(g, m, v):
            dt = leaf_dtype(g, m, v)
            rdt = _base.real_dtype(dt)
            t = count_inc.astype(rdt)
            lr_t = _base.scalar(lr, rdt)
            bc1 = 1 - _base.scalar(b1, rdt) ** t
            bc2 = 1 - _base.scalar(b2, rdt) ** t
            eps_ = _base.scalar(eps, rdt)
            v = v.astype(rdt)
            if bias_correction == "folded":
                if add_eps_root:
                    v = v + _base.scalar(eps_root, rdt)
                step_size = lr_t * jnp.sqrt(bc2) / bc1
                return step_size / nonzero(jnp.sqrt(v) + eps_), m.astype(dt)
            v_hat = v / bc2
            if add_eps_root:
                v_hat = v_hat + _base.scalar(eps_root, rdt)
            return lr_t / nonzero(jnp.sqrt(v_hat) + eps_), m.astype(dt) / bc1

        rates, directions = _base.tree_map2(rate_and_direction, updates, mu, nu_for_rate)
        bounded, rate_state = rate_tx.update(
            rates, state.rate_state, params, **{**extra_args, "count": state.count}
        )
        finish = getattr(rate_tx.update, BOUND_FROM_NEW_STATE, None)
        if finish is not None and _recompute_rates():
            # Speed only, bit-identical: the rates have two consumers (the new
            # rate state and the update). XLA:CPU will not duplicate their
            # sqrt/divide into both loops and writes them to a fresh temporary
            # every step (2.5x slower on large leaves). Recompute them for the
            # update from an optimization_barrier'd copy of v, which CSE cannot
            # merge with the first, and bound them with the *new* rate state so
            # that the update loop reads it instead of re-deriving it from the
            # old state (which would force a copy of the donated old state).
            nu_b = jax.tree.map(jax.lax.optimization_barrier, nu_for_rate)
            rates_b, _ = _base.tree_map2(rate_and_direction, updates, mu, nu_b)
            bounded = finish(rates_b, state.rate_state, rate_state)
        new_updates = _base.tree_map(
            lambda g, r, d: (r * d).astype(g.dtype), updates, bounded, directions
        )
        record = jnp.stack([
            jnp.asarray(x).astype(_record_dtype())
            for x in (lr, b1, b2, eps, eps_root, float(bias_correction == "explicit"))
        ])
        return new_updates, ScaleByBoundedAdamState(
            count=count_inc, mu=mu, nu=nu, nu_max=nu_max, rate_state=rate_state,
            rate_hyperparams=record,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AddDecoupledWeightDecayState(NamedTuple):
    """State of :func:`add_decoupled_weight_decay` when it has a schedule.

    Attributes:
      count: int32 scalar step counter for the weight-decay and learning-rate
        schedules (saturating). With constant hyperparameters the block keeps
        no state (``optax.EmptyState``), as ``optax.scale_by_learning_rate``.
    """

    count: chex.Array


def _decay(
    weight_decay: optax.ScalarOrSchedule, learning_rate: optax.ScalarOrSchedule
) -> optax.GradientTransformationExtraArgs:
    """Stateless ``updates + wd_t * lr_t * params``; the step comes as extra arg ``count``."""
    scheduled = _base.is_schedule(weight_decay) or _base.is_schedule(learning_rate)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, count=None, **extra_args):
        _base.check_updates(updates, params, "add_decoupled_weight_decay")
        del extra_args
        if _base.concrete_float(weight_decay) == 0.0:
            # Nothing to add (and the params are not needed). Skipping, rather
            # than adding 0 * params, is what the PyTorch releases do and keeps
            # g + 0 * theta from becoming an extra array-sized temporary.
            return updates, state
        if params is None:
            raise ValueError(
                "weight decay needs the params: call update(grads, state, params)."
            )
        if scheduled and count is None:
            raise ValueError(
                "a scheduled weight decay or learning rate needs the step: pass the "
                "extra argument `count` (the 0-based index of this update)."
            )
        wd = _base.at_count(weight_decay, count)
        lr = _base.at_count(learning_rate, count)

        def decay(u, p):
            dt = _base.compute_dtype(u.dtype, p.dtype)
            rdt = _base.real_dtype(dt)
            coef = _base.scalar(wd, rdt) * _base.scalar(lr, rdt)
            return (u.astype(dt) + coef * p.astype(dt)).astype(u.dtype)

        return _base.tree_map(decay, updates, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def add_decoupled_weight_decay(
    weight_decay: optax.ScalarOrSchedule = 0.0,
    learning_rate: optax.ScalarOrSchedule = 1.0,
    mask: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adds ``weight_decay_t * learning_rate_t * params`` to the updates.

    In a chain that ends with ``optax.scale(-1.0)`` this is decoupled weight
    decay (Loshchilov & Hutter) with the learning rate inside, as the released
    AdaMod code applies it::

      theta <- theta - wd_t lr_t theta

    Use it after a transformation that already includes the learning rate
    (:func:`scale_by_bounded_adam`). The scalar product ``wd_t * lr_t`` is
    formed in the params' dtype (at least float32).

    This is the standalone block for your own chains. It keeps a step counter
    only when ``weight_decay`` or ``learning_rate`` is a schedule (like
    ``optax.scale_by_learning_rate``). The optimizers of this package do not
    use it: they apply the same decay reading the core's ``count``, so their
    state has a single ``count``.

    Args:
      weight_decay: a non-negative float or schedule.
      learning_rate: a non-negative float or schedule, evaluated at the same
        count as the optimizer's (update ``k`` uses ``learning_rate(k)``).
      mask: as in ``optax.add_decayed_weights``: a pytree of booleans (or a
        prefix of the params tree), or a callable params -> such a pytree;
        ``True`` where decay applies.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is
      :class:`AddDecoupledWeightDecayState` with a schedule and
      ``optax.EmptyState`` without, inside an ``optax.MaskedState`` with a mask.
    """
    _base.check_range("weight_decay", weight_decay, low=0.0)
    _base.check_learning_rate(learning_rate)
    if mask is not None:
        _base.check_mask(mask)
    inner = _decay(weight_decay, learning_rate)
    if _base.is_schedule(weight_decay) or _base.is_schedule(learning_rate):

        def init_fn(params):
            del params
            return AddDecoupledWeightDecayState(count=jnp.zeros([], jnp.int32))

        def update_fn(updates, state, params=None, **extra_args):
            extra_args.pop("count", None)
            updates, _ = inner.update(
                updates, optax.EmptyState(), params, count=state.count, **extra_args
            )
            return updates, AddDecoupledWeightDecayState(
                count=optax.safe_increment(state.count)
            )

        tx = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    else:

        def update_plain(updates, state, params=None, **extra_args):
            extra_args.pop("count", None)
            return inner.update(updates, state, params, **extra_args)

        tx = optax.GradientTransformationExtraArgs(inner.init, update_plain)
    if mask is not None:
        return optax.masked(tx, mask)
    return tx


WeightDecayMode = Literal["coupled", "decoupled"]


def _core_count(core_state: optax.OptState) -> jax.Array:
    """The ``count`` of the :class:`ScaleByBoundedAdamState` inside ``core_state``."""
    found = [
        s for s in jax.tree_util.tree_leaves(
            core_state, is_leaf=lambda x: isinstance(x, ScaleByBoundedAdamState))
        if isinstance(s, ScaleByBoundedAdamState)
    ]
    if len(found) != 1:
        raise ValueError(
            f"expected one ScaleByBoundedAdamState in the core's state, found {len(found)}."
        )
    return found[0].count


def with_weight_decay(
    core: optax.GradientTransformation,
    *,
    learning_rate: optax.ScalarOrSchedule,
    weight_decay: optax.ScalarOrSchedule,
    mask: Any,
    mode: WeightDecayMode,
) -> optax.GradientTransformationExtraArgs:
    """Weight decay around ``core`` (which includes the lr), then descend.

    Coupled L2 adds ``wd_t * theta`` to the gradient before the core (the
    decay term with a learning rate of 1); decoupled decay adds
    ``wd_t * lr_t * theta`` to the core's step, as in AdaMod.

    The result behaves as ``optax.chain(decay, core, optax.scale(-1.0))``
    (coupled) or ``optax.chain(core, decay, optax.scale(-1.0))`` (decoupled),
    and its state is that chain's tuple, but the decay keeps no counter: it
    evaluates its schedules at the ``count`` of the core's
    :class:`ScaleByBoundedAdamState` (before the update), so the optimizer's
    state holds exactly one ``count``.
    """
    _base.check_range("weight_decay", weight_decay, low=0.0)
    _base.check_learning_rate(learning_rate)
    coupled = mode == "coupled"
    decay = _decay(weight_decay, 1.0 if coupled else learning_rate)
    if mask is not None:
        _base.check_mask(mask)
        decay = optax.masked(decay, mask)
    core = optax.with_extra_args_support(core)
    descend = optax.scale(-1.0)

    def init_fn(params):
        states = (decay.init(params), core.init(params))
        return (*(states if coupled else states[::-1]), descend.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        if coupled:
            decay_state, core_state, descend_state = state
        else:
            core_state, decay_state, descend_state = state
        count = _core_count(core_state)
        decay_args = {**extra_args, "count": count}
        if coupled:
            updates, decay_state = decay.update(updates, decay_state, params, **decay_args)
        updates, core_state = core.update(updates, core_state, params, **extra_args)
        if not coupled:
            updates, decay_state = decay.update(updates, decay_state, params, **decay_args)
        updates, descend_state = descend.update(updates, descend_state, params)
        if coupled:
            return updates, (decay_state, core_state, descend_state)
        return updates, (core_state, decay_state, descend_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
