"""AdaMod's relatives as ready-to-use optimizers: AdaBound, AMSBound, DiffGrad, DiffMod.

Every optimizer here is a chain of the same public building blocks as
:func:`adamod_optax.adamod`: the core :func:`scale_by_bounded_adam` (moments,
bias corrections, per-parameter rates), a rate transformation (a bound),
optionally :func:`with_friction`, weight decay and ``optax.scale(-1.0)``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import optax

from adamod_optax._alias import _B3_DEFAULT, resolve_b3
from adamod_optax._bounds import clip_by_dynamic_bound
from adamod_optax._friction import check_version, with_friction
from adamod_optax._transforms import (
    add_decoupled_weight_decay,
    scale_by_bounded_adam,
    scale_by_momental_bound,
)

WeightDecayMode = Literal["coupled", "decoupled"]


def _check_mode(mode: Any) -> None:
    if mode not in ("coupled", "decoupled"):
        raise ValueError(
            f"`weight_decay_mode` must be 'coupled' (L2: g + wd * theta, as released) "
            f"or 'decoupled' (theta -= wd * lr_t * theta), got {mode!r}."
        )


def _finish(
    core: optax.GradientTransformation,
    learning_rate: optax.ScalarOrSchedule,
    weight_decay: optax.ScalarOrSchedule,
    mask: Any,
    mode: WeightDecayMode,
) -> optax.GradientTransformationExtraArgs:
    """Weight decay around ``core`` (which includes the lr), then descend.

    Coupled L2 adds ``wd_t * theta`` to the gradient before the core (the
    decay term with a learning rate of 1); decoupled decay adds
    ``wd_t * lr_t * theta`` to the core's step, as in AdaMod.
    """
    if mode == "coupled":
        return optax.chain(
            add_decoupled_weight_decay(weight_decay, 1.0, mask), core, optax.scale(-1.0)
        )
    return optax.chain(
        core, add_decoupled_weight_decay(weight_decay, learning_rate, mask), optax.scale(-1.0)
    )


def _bound_family(
    amsgrad: bool,
    learning_rate: optax.ScalarOrSchedule,
    final_lr: float,
    gamma: float,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: optax.ScalarOrSchedule,
    mask: Any,
    weight_decay_mode: WeightDecayMode,
    base_lr: Optional[float],
    mu_dtype: Any,
    nu_dtype: Any,
) -> optax.GradientTransformationExtraArgs:
    _check_mode(weight_decay_mode)
    core = scale_by_bounded_adam(
        learning_rate,
        b1,
        b2,
        eps,
        rate_transform=clip_by_dynamic_bound(
            learning_rate, final_lr, gamma, base_lr=base_lr
        ),
        amsgrad=amsgrad,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )
    return _finish(core, learning_rate, weight_decay, mask, weight_decay_mode)


def adabound(
    learning_rate: optax.ScalarOrSchedule,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    weight_decay_mode: WeightDecayMode = "coupled",
    base_lr: Optional[float] = None,
    mu_dtype: Optional[Any] = None,
    nu_dtype: Optional[Any] = None,
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

    Args:
      learning_rate: a non-negative float or an optax schedule.
      final_lr: the SGD learning rate the bounds converge to, >= 0.
      gamma: convergence speed of the bounds, > 0.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the (uncorrected) ``sqrt(v_t)``, >= 0.
      weight_decay: non-negative float or schedule.
      mask: where weight decay applies, as in ``optax.adamw``.
      weight_decay_mode: ``"coupled"`` (L2 on the gradient, the original's
        default) or ``"decoupled"`` (``theta -= wd_t lr_t theta``).
      base_lr: learning rate at which ``final_t = final_lr``, > 0. Default:
        ``learning_rate`` at count 0.
      mu_dtype: storage dtype of the first moment.
      nu_dtype: storage dtype of the second moment.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for ``gamma <= 0``, negative ``final_lr``, learning rate, eps
        or weight decay, ``b1``/``b2`` outside [0, 1), ``base_lr <= 0``, a
        schedule starting at 0 without ``base_lr``, or an unknown
        ``weight_decay_mode``.

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
    return _bound_family(
        False, learning_rate, final_lr, gamma, b1, b2, eps, weight_decay, mask,
        weight_decay_mode, base_lr, mu_dtype, nu_dtype,
    )


def amsbound(
    learning_rate: optax.ScalarOrSchedule,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    weight_decay_mode: WeightDecayMode = "coupled",
    base_lr: Optional[float] = None,
    mu_dtype: Optional[Any] = None,
    nu_dtype: Optional[Any] = None,
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
    return _bound_family(
        True, learning_rate, final_lr, gamma, b1, b2, eps, weight_decay, mask,
        weight_decay_mode, base_lr, mu_dtype, nu_dtype,
    )


def diffgrad(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    weight_decay_mode: WeightDecayMode = "coupled",
    friction_version: int = 0,
    mu_dtype: Optional[Any] = None,
    nu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
    r"""DiffGrad: Adam with its momentum damped where the gradient barely changes.

    Reproduces torch-optimizer's ``DiffGrad`` (0.3.0). With ``t`` the 1-based
    step, ``lr_t = learning_rate(t - 1)`` and ``g_0 = 0``::

      g_t     = grad_t + wd_t theta_{t-1}                 (weight_decay_mode="coupled")
      m_t     = b1 m_{t-1} + (1 - b1) g_t
      v_t     = b2 v_{t-1} + (1 - b2) g_t^2
      dfc_t   = sigmoid(|g_{t-1} - g_t|)                  (friction_version=0)
      theta_t = theta_{t-1} - lr_t sqrt(1 - b2^t) / (1 - b1^t) m_t dfc_t / (sqrt(v_t) + eps)

    The friction uses the gradient after L2 decay, as the release does;
    ``weight_decay_mode="decoupled"`` instead applies
    ``theta -= wd_t lr_t theta`` and leaves the gradient (and the friction)
    alone. ``friction_version`` 1 and 2 select the other friction shapes of
    :func:`with_friction`. The previous gradient is held in the state (a copy),
    so friction cannot collapse to 0.5 the way it does in PyTorch code that
    keeps a reference to a reused gradient buffer.

    The chain is :func:`with_friction` around :func:`scale_by_bounded_adam`
    (no rate bound), weight decay and ``optax.scale(-1.0)``.

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the (uncorrected) ``sqrt(v_t)``, >= 0.
      weight_decay: non-negative float or schedule.
      mask: where weight decay applies, as in ``optax.adamw``.
      weight_decay_mode: ``"coupled"`` (L2, as released) or ``"decoupled"``.
      friction_version: 0 (DiffGrad), 1 or 2; see :func:`with_friction`.
      mu_dtype: storage dtype of the first moment.
      nu_dtype: storage dtype of the second moment.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: for negative learning rate, eps or weight decay, ``b1``/``b2``
        outside [0, 1), an unknown ``weight_decay_mode`` or friction version.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from adamod_optax import diffgrad
      >>> tx = diffgrad(0.1)
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> updates, state = tx.update(jnp.array([0.5, 100.0]), state, params)
      >>> # step 1 is Adam's -lr * sign(g), times sigmoid(|0 - g|)
      >>> print([f"{u:.4f}" for u in updates.tolist()])
      ['-0.0622', '-0.1000']

    References:
      Dubey, Chakraborty, Roy, Mukherjee, Singh, Chaudhuri: "diffGrad: An
      Optimization Method for Convolutional Neural Networks",
      arXiv:1909.11015, 2019.
    """
    _check_mode(weight_decay_mode)
    check_version(friction_version, "friction_version")
    core = with_friction(
        scale_by_bounded_adam(
            learning_rate, b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype
        ),
        friction_version,
    )
    return _finish(core, learning_rate, weight_decay, mask, weight_decay_mode)


def diffmod(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = _B3_DEFAULT,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    len_memory: Optional[float] = None,
    friction_version: int = 0,
    mu_dtype: Optional[Any] = None,
    nu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
    r"""DiffMod: AdaMod's momental bound with DiffGrad's friction after it.

    :func:`adamod_optax.adamod` (as released) with the momentum multiplied by
    DiffGrad's friction coefficient. With ``t`` the 1-based step,
    ``lr_t = learning_rate(t - 1)``, ``g_0 = 0``::

      m_t   = b1 m_{t-1} + (1 - b1) g_t
      v_t   = b2 v_{t-1} + (1 - b2) g_t^2
      eta_t = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t) + eps)
      s_t   = b3 s_{t-1} + (1 - b3) eta_t,              s_0 = 0
      dfc_t = sigmoid(|g_{t-1} - g_t|)                  (friction_version=0)
      theta_t = theta_{t-1} - wd_t lr_t theta_{t-1} - min(eta_t, s_t) m_t dfc_t

    Versions 1 (``sigmoid(d)``) and 2 (``9 / (1 + exp(-|d|/2)) - 4``, range
    [0.5, 5)) of :func:`with_friction` are the other published shapes.

    **No stale-reference bug.** The widely copied PyTorch DiffMod stores a
    reference to the gradient tensor as its "previous gradient"; when the
    training loop reuses gradient buffers in place the difference is 0 from
    step 2 on and every version's friction is a constant 0.5 (AdaMod at half
    the step). Here the previous gradient is a copy in the optimizer state, so
    friction really tracks ``g_{t-1} - g_t``.

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      b3: decay of the average of learning rates, in [0, 1).
      eps: added to the (uncorrected) ``sqrt(v_t)``, >= 0.
      weight_decay: decoupled decay, non-negative float or schedule
        (``theta -= wd_t lr_t theta``, as AdaMod).
      mask: where weight decay applies, as in ``optax.adamw``.
      len_memory: alternative spelling of ``b3 = 1 - 1/len_memory`` (>= 1).
      friction_version: 0 (default), 1 or 2; see :func:`with_friction`.
      mu_dtype: storage dtype of the first moment.
      nu_dtype: storage dtype of the second moment and the rate average.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: as :func:`adamod_optax.adamod`, and for a friction version
        other than 0, 1 or 2.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from adamod_optax import diffmod
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> tx = diffmod(learning_rate=1e-2, weight_decay=1e-4, len_memory=500)
      >>> state = tx.init(params)
      >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
      >>> updates, state = tx.update(grads, state, params)
      >>> params = optax.apply_updates(params, updates)

    References:
      Ding, Ren, Luo, Sun: "An Adaptive and Momental Bound Method for
      Stochastic Learning", arXiv:1910.12249, 2019.
      Dubey et al.: "diffGrad: An Optimization Method for Convolutional Neural
      Networks", arXiv:1909.11015, 2019.
    """
    b3 = resolve_b3(b3, len_memory)
    check_version(friction_version, "friction_version")
    core = with_friction(
        scale_by_bounded_adam(
            learning_rate,
            b1,
            b2,
            eps,
            rate_transform=scale_by_momental_bound(b3, dtype=nu_dtype),
            mu_dtype=mu_dtype,
            nu_dtype=nu_dtype,
        ),
        friction_version,
    )
    return _finish(core, learning_rate, weight_decay, mask, "decoupled")
