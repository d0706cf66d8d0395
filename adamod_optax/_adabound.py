"""AdaBound and AMSBound: the dynamic bound and the ready-to-use optimizers."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamod_optax import _base
from adamod_optax._core import (
    BoundStep,
    FastPath,
    RateBound,
    WeightDecayMode,
    rate_bound,
    scale_by_bounded_adam,
    with_weight_decay,
)


class ClipByDynamicBoundState(NamedTuple):
    """State of :func:`clip_by_dynamic_bound`: the bounds of the last update.

    The transformation keeps no step counter: it reads the step from the
    ``count`` extra argument that :func:`scale_by_bounded_adam` passes to its
    rate transformation. It records the bounds it applied, for
    :func:`adamod_optax.effective_learning_rates`.

    Attributes:
      lower: float scalar (float64 when ``jax_enable_x64`` is on, else
        float32), ``lower_t`` of the last update; 0 without a lower bound and
        before the first update.
      upper: same for ``upper_t``; ``+inf`` without an upper bound and before
        the first update.
    """

    lower: jax.Array
    upper: jax.Array


def _check_base_lr(learning_rate: Any, base_lr: Any) -> None:
    """Reject a base learning rate that would divide by zero (or flip the bounds).

    A constant learning rate of 0 is fine (``lr_t / base_lr`` is then taken as
    0: no step); a *schedule* starting at 0 is not, since its later, positive
    values would be divided by 0.
    """
    if base_lr is not None:
        _base.check_range("base_lr", base_lr, low=0.0, low_inclusive=False)
    elif _base.is_schedule(learning_rate):
        start = _base.concrete_float(learning_rate(jnp.zeros([], jnp.int32)))
        if start is not None and start <= 0.0:
            raise ValueError(
                "`learning_rate` is a schedule starting at "
                f"{start!r} (its value at count 0), so AdaBound's bound "
                "final_lr * lr_t / base_lr has no base_lr to divide by. Pass "
                "`base_lr` > 0 explicitly: the learning rate at which the bounds "
                "converge to `final_lr` (for a warmup, its peak value)."
            )


def clip_by_dynamic_bound(
    learning_rate: optax.ScalarOrSchedule,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    *,
    base_lr: Optional[float] = None,
    lower: bool = True,
    upper: bool = True,
) -> RateBound:
    r"""AdaBound's dynamic bound over per-parameter learning rates.

    This is a *rate transformation*: its inputs are learning rates ``eta_t``
    (for example from :func:`scale_by_bounded_adam`, learning rate included),
    not gradients. With ``t`` the 1-based step and ``lr_t = learning_rate(t-1)``
    (the step comes from the ``count`` extra argument that
    :func:`scale_by_bounded_adam` passes to its ``rate_transform``)::

      final_t = final_lr * lr_t / base_lr
      lower_t = final_t * (1 - 1 / (gamma t + 1))
      upper_t = final_t * (1 + 1 / (gamma t))
      output_t = clip(eta_t, lower_t, upper_t)

    Both bounds start far apart (``[0, inf)`` at t = 0) and close in on
    ``final_t`` at a speed set by ``gamma``: after ``1 / gamma`` steps they are
    ``[final/2, 2 final]``. The optimizer slides from Adam towards SGD with
    learning rate ``final_t``. ``lower=False`` or ``upper=False`` drops one
    side, so the remaining bound can be chained with other rate
    transformations (for example AdaMod's :func:`scale_by_momental_bound`).

    **Schedules and base_lr.** As in the original release, ``final_t`` follows
    the learning-rate schedule: ``base_lr`` defaults to the learning rate at
    count 0 (``learning_rate(0)`` for a schedule, computed in the same traced
    context as the step), so decaying the schedule by 10x also moves both
    bounds by 10x. A schedule that starts at 0 (a warmup from zero) has no
    such base: pass ``base_lr`` explicitly (usually the peak learning rate),
    or a ``ValueError`` is raised at construction. A constant learning rate
    of 0 takes no step (``lr_t / base_lr`` is taken as 0).

    **inject_hyperparams.** ``optax.inject_hyperparams`` evaluates a scheduled
    (or changed) learning rate itself and passes the *value* to this factory
    every step, so the default base equals ``lr_t`` and ``final_t`` stays at
    ``final_lr`` whatever the learning rate does (0 still takes no step).
    Give ``base_lr`` explicitly there: the bounds then follow the injected
    learning rate exactly as in the plain, uninjected optimizer.

    Args:
      learning_rate: the learning rate ``lr_t`` of the core (float or optax
        schedule, evaluated at the ``count`` extra argument, the core's step
        count; this transformation keeps none).
      final_lr: the SGD learning rate both bounds converge to (at
        ``lr_t = base_lr``), >= 0.
      gamma: convergence speed of the bounds, > 0.
      base_lr: the learning rate at which ``final_t = final_lr``; > 0. Default:
        ``learning_rate`` at count 0.
      lower: apply the lower bound.
      upper: apply the upper bound.

    Returns:
      A :class:`RateBound` (an ``optax.GradientTransformationExtraArgs``) with
      state :class:`ClipByDynamicBoundState`. Chain it with other bounds by
      :func:`chain_bounds` to keep the core's fast path.

    Raises:
      ValueError: for ``gamma <= 0``, negative ``final_lr``, ``base_lr <= 0``,
        or (without ``base_lr``) a schedule whose value at count 0 is 0. A
        constant learning rate of 0 is accepted (no step). Traced values
        (inside ``jit``) cannot be checked.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from adamod_optax import clip_by_dynamic_bound, scale_by_bounded_adam
      >>> tx = optax.chain(
      ...     scale_by_bounded_adam(1.0, rate_transform=clip_by_dynamic_bound(
      ...         1.0, final_lr=0.1, gamma=0.5)),
      ...     optax.scale(-1.0))
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(2)}, state, params)
      >>> # Adam's rate 10 (its step -1 is -10 * m_1, m_1 = 0.1) is clipped to
      >>> # the upper bound 0.1 * (1 + 1 / 0.5) = 0.3 at t = 1: the step is -0.03.
      >>> print(f"{float(updates['w'][0]):.4f}")
      -0.0300

    References:
      Luo, Xiong, Liu, Sun: "Adaptive Gradient Methods with Dynamic Bound of
      Learning Rate", ICLR 2019, arXiv:1902.09843.
    """
    _base.check_learning_rate(learning_rate)
    _base.check_range("final_lr", final_lr, low=0.0)
    _base.check_range("gamma", gamma, low=0.0, low_inclusive=False)
    _check_base_lr(learning_rate, base_lr)

    record_dt = jnp.dtype(jnp.result_type(float))

    def init_fn(params: optax.Params) -> ClipByDynamicBoundState:
        del params
        return ClipByDynamicBoundState(
            lower=jnp.zeros([], record_dt), upper=jnp.full([], jnp.inf, record_dt)
        )

    def split_fn(state, params=None, *, count=None, **extra_args):
        del params, extra_args
        if count is None:
            raise ValueError(
                "clip_by_dynamic_bound needs the step count, which "
                "scale_by_bounded_adam passes to its rate_transform as the extra "
                "argument `count`: use it as scale_by_bounded_adam(..., "
                "rate_transform=clip_by_dynamic_bound(...)), or pass count= (the "
                "0-based index of the update) yourself."
            )
        del state
        count = jnp.asarray(count, jnp.int32)
        lr = _base.at_count(learning_rate, count)
        base = (
            _base.at_count(learning_rate, jnp.zeros([], jnp.int32))
            if base_lr is None
            else base_lr
        )
        count_inc = optax.safe_increment(count)

        def bounds(dt):
            lr_t, base_t = _base.scalar(lr, dt), _base.scalar(base, dt)
            # lr_t == base_t (a constant learning rate) gives exactly 1, and
            # lr_t == 0 gives 0 (no step) even when base_t is 0 too, as happens
            # under inject_hyperparams without an explicit base_lr.
            ratio = jnp.where(lr_t == base_t, (lr_t != 0).astype(dt), lr_t / base_t)
            final = _base.scalar(final_lr, dt) * ratio
            gt = _base.scalar(gamma, dt) * count_inc.astype(dt)
            lo = final * (1 - 1 / (gt + 1)) if lower else jnp.zeros([], dt)
            hi = final * (1 + 1 / gt) if upper else jnp.full([], jnp.inf, dt)
            return lo, hi

        def clip(eta: jax.Array) -> jax.Array:
            lo, hi = bounds(_base.real_dtype(eta.dtype))
            return clip_rates(eta, lo if lower else None, hi if upper else None)

        lo, hi = bounds(record_dt)
        return BoundStep(
            arrays=(),
            bound=lambda eta: (clip(eta), ()),
            bound_from_new=lambda eta, old, new: clip(eta),
            finish=lambda new: ClipByDynamicBoundState(lower=lo, upper=hi),
        )

    return rate_bound(init_fn, split_fn, name="clip_by_dynamic_bound")


def clip_rates(eta: jax.Array, lo: Optional[jax.Array], hi: Optional[jax.Array]) -> jax.Array:
    """``clip(eta, lo, hi)`` of one leaf (``None``: that side is not bounded).

    The elementwise piece of :func:`clip_by_dynamic_bound`, called by its step
    and, with the bounds its state recorded, by the diagnostics.
    """
    out = eta
    if lo is not None:
        out = jnp.maximum(out, lo.astype(eta.dtype))
    if hi is not None:
        out = jnp.minimum(out, hi.astype(eta.dtype))
    return out


def applied_clip(state: ClipByDynamicBoundState, eta: optax.Updates) -> optax.Updates:
    """The rates the last update applied (a tree), from the bounds recorded in ``state``.

    The recorded bounds are in the record dtype (float64 under
    ``jax_enable_x64``); the step formed them in the rates' dtype, so for
    float32 rates with float64 on they may differ by an ulp of the bound.
    """
    return _base.tree_map(lambda e: clip_rates(e, state.lower, state.upper), eta)


def _bound_family(
    learning_rate: optax.ScalarOrSchedule,
    *,
    amsgrad: bool,
    final_lr: float,
    gamma: float,
    b1: float,
    b2: float,
    eps: float,
    eps_root: float,
    weight_decay: optax.ScalarOrSchedule,
    mask: Any,
    weight_decay_mode: WeightDecayMode,
    base_lr: Optional[float],
    mu_dtype: Any,
    nu_dtype: Any,
    fast_path: FastPath,
) -> optax.GradientTransformationExtraArgs:
    _base.check_weight_decay_mode(weight_decay_mode)
    core = scale_by_bounded_adam(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        rate_transform=clip_by_dynamic_bound(
            learning_rate, final_lr, gamma, base_lr=base_lr
        ),
        amsgrad=amsgrad,
        nu_dtype=nu_dtype,
        fast_path=fast_path,
    )
    return with_weight_decay(
        core, learning_rate=learning_rate, weight_decay=weight_decay, mask=mask,
        mode=weight_decay_mode,
    )


def adabound(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    base_lr: Optional[float] = None,
    weight_decay_mode: WeightDecayMode = "coupled",
    nu_dtype: Optional[Any] = None,
    nesterov: bool = False,
    fast_path: FastPath = "auto",
) -> optax.GradientTransformationExtraArgs:
    r"""AdaBound: Adam whose per-parameter learning rates are clipped to bounds
    that converge to an SGD learning rate.

    Reproduces the original release (PyPI ``adabound`` 0.0.5, and
    torch-optimizer's ``AdaBound``). With ``t`` the 1-based step and
    ``lr_t = learning_rate(t - 1)``::

      g       = g_t + wd_t theta_{t-1}                      (weight_decay_mode="coupled")
      m_t     = b1 m_{t-1} + (1 - b1) g
      v_t     = b2 v_{t-1} + (1 - b2) g^2
      eta_t   = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t) + eps)
      final_t = final_lr lr_t / base_lr
      theta_t = theta_{t-1} - clip(eta_t, final_t (1 - 1/(gamma t + 1)),
                                          final_t (1 + 1/(gamma t))) m_t

    ``weight_decay_mode="decoupled"`` leaves the gradient alone and applies
    ``theta -= wd_t lr_t theta`` (as :func:`adamod_optax.adamod` and
    ``optax.adamw`` do). The original repository's separate ``AdaBoundW``
    applies ``theta -= wd theta`` without the learning rate; with a constant
    learning rate that is ``weight_decay = wd / lr`` here.

    **Schedules.** ``base_lr`` defaults to the learning rate at count 0 (a
    schedule's first value), so the bounds follow the schedule as in the
    original: decaying the learning rate 10x also lowers ``final_t`` 10x. A
    schedule starting at 0 (warmup from zero) needs an explicit ``base_lr``
    (typically the peak learning rate): without it construction raises
    ``ValueError`` instead of dividing by zero. Under
    ``optax.inject_hyperparams`` the schedule is evaluated outside and its
    value passed in, so give ``base_lr`` explicitly there as well; with it the
    injected optimizer equals the plain one.

    The state matters: rebuilding the optimizer each step restarts ``t`` and
    the bounds. The chain is :func:`scale_by_bounded_adam` with
    :func:`clip_by_dynamic_bound` as its rate transformation, weight decay
    (:func:`add_decoupled_weight_decay`, with a learning rate of 1 and placed
    before the core for coupled L2) and ``optax.scale(-1.0)``.

    **Coming from optax.adamw.** The positional arguments are
    ``optax.adamw``'s, in its order, and mean the same; ``final_lr``,
    ``gamma``, ``base_lr`` and ``weight_decay_mode`` are keyword-only.
    ``weight_decay`` defaults to 0 and is coupled L2 by default (as
    released), and ``nesterov=True`` is refused.

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the (uncorrected) ``sqrt(v_t)``, >= 0.
      eps_root: added to ``v_t`` inside the square root, >= 0 (0: as released).
      mu_dtype: storage dtype of the first moment.
      weight_decay: non-negative float or schedule.
      mask: where weight decay applies, as in ``optax.adamw``.
      final_lr: the SGD learning rate the bounds converge to, >= 0.
      gamma: convergence speed of the bounds, > 0.
      base_lr: learning rate at which ``final_t = final_lr``, > 0. Default:
        ``learning_rate`` at count 0.
      weight_decay_mode: ``"coupled"`` (L2 on the gradient, the original's
        default) or ``"decoupled"`` (``theta -= wd_t lr_t theta``).
      nu_dtype: storage dtype of the second moment.
      nesterov: only ``False`` is accepted (``optax.adamw`` compatibility).
      fast_path: how the step is compiled (``"auto"``, ``"recompute"`` or
        ``"plain"``; speed and memory only), see :func:`scale_by_bounded_adam`.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for ``gamma <= 0``, negative ``final_lr``, learning rate, eps
        or weight decay, ``b1``/``b2`` outside [0, 1), ``base_lr <= 0``, a
        schedule starting at 0 without ``base_lr``, an unknown
        ``weight_decay_mode``, or ``nesterov=True``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from adamod_optax import adabound
      >>> schedule = optax.linear_schedule(1e-3, 1e-4, transition_steps=100)
      >>> tx = adabound(schedule, final_lr=0.1, weight_decay=5e-4)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = tx.init(params)
      >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
      >>> updates, state = tx.update(grads, state, params)
      >>> params = optax.apply_updates(params, updates)
      >>> warmup = optax.linear_schedule(0.0, 1e-3, transition_steps=100)
      >>> tx = adabound(warmup, base_lr=1e-3)  # starts at 0: base_lr required

    References:
      Luo, Xiong, Liu, Sun: "Adaptive Gradient Methods with Dynamic Bound of
      Learning Rate", ICLR 2019, arXiv:1902.09843.
    """
    _base.check_nesterov("adabound", nesterov)
    return _bound_family(
        learning_rate, amsgrad=False, final_lr=final_lr, gamma=gamma, b1=b1,
        b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay, mask=mask,
        weight_decay_mode=weight_decay_mode, base_lr=base_lr, mu_dtype=mu_dtype,
        nu_dtype=nu_dtype, fast_path=fast_path,
    )


def amsbound(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    base_lr: Optional[float] = None,
    weight_decay_mode: WeightDecayMode = "coupled",
    nu_dtype: Optional[Any] = None,
    nesterov: bool = False,
    fast_path: FastPath = "auto",
) -> optax.GradientTransformationExtraArgs:
    r"""AMSBound: :func:`adabound` with AMSGrad's running maximum of ``v_t``.

    As the original release (``adabound`` 0.0.5 with ``amsbound=True``)::

      v_max_t = max(v_max_{t-1}, v_t)
      eta_t   = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_max_t) + eps)

    and everything else (bounds, schedules and ``base_lr``, weight decay
    modes, arguments, errors) as in :func:`adabound`. The extra state is
    ``nu_max`` of :class:`ScaleByBoundedAdamState`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from adamod_optax import amsbound
      >>> tx = amsbound(1e-3, final_lr=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = tx.init(params)
      >>> updates, state = tx.update(2 * params, state, params)
      >>> params = optax.apply_updates(params, updates)

    References:
      Luo, Xiong, Liu, Sun: "Adaptive Gradient Methods with Dynamic Bound of
      Learning Rate", ICLR 2019, arXiv:1902.09843.
    """
    _base.check_nesterov("amsbound", nesterov)
    return _bound_family(
        learning_rate, amsgrad=True, final_lr=final_lr, gamma=gamma, b1=b1,
        b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay, mask=mask,
        weight_decay_mode=weight_decay_mode, base_lr=base_lr, mu_dtype=mu_dtype,
        nu_dtype=nu_dtype, fast_path=fast_path,
    )
