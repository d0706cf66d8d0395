"""DiffGrad and DiffMod: DiffGrad's friction and the ready-to-use optimizers."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamod_optax import _base
from adamod_optax._adamod import scale_by_momental_bound
from adamod_optax._core import (
    FastPath,
    WeightDecayMode,
    scale_by_bounded_adam,
    with_weight_decay,
)


class WithFrictionState(NamedTuple):
    """State of :func:`with_friction`.

    Attributes:
      prev_grad: the gradient of the previous step (a copy held in the state,
        zeros before the first step); same tree and dtypes as the gradients
        (the params' dtypes at init).
      inner_state: the state of the wrapped transformation.
    """

    prev_grad: optax.Updates
    inner_state: optax.OptState


def _v0(d: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(jnp.abs(d))


def _v1(d: jax.Array) -> jax.Array:
    if jnp.iscomplexobj(d):
        raise TypeError("friction version 1, sigmoid(g_prev - g), needs real gradients.")
    return jax.nn.sigmoid(d)


def _v2(d: jax.Array) -> jax.Array:
    return 9 / (1 + jnp.exp(-0.5 * jnp.abs(d))) - 4


_VERSIONS = (_v0, _v1, _v2)


def _friction_coefficient(prev_grad: jax.Array, grad: jax.Array, version: Any = 0) -> jax.Array:
    """DiffGrad's friction ``dfc`` of ``d = prev_grad - grad`` (elementwise).

    Version 0 ``sigmoid(|d|)`` in [0.5, 1) (DiffGrad), version 1
    ``sigmoid(d)`` in (0, 1), version 2 ``9 / (1 + exp(-|d| / 2)) - 4`` in
    [0.5, 5). ``version`` may be a traced integer (``optax.inject_hyperparams``
    injects it as an array); it is then clipped to [0, 2].
    """
    d = prev_grad - grad
    if _base.is_traced(version):
        return jax.lax.switch(jnp.clip(version, 0, 2), _VERSIONS, d)
    return _VERSIONS[int(version)](d)


def with_friction(
    inner: optax.GradientTransformation, version: int = 0
) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies ``inner``'s updates by DiffGrad's friction coefficient.

    With ``g`` the incoming gradient and ``g_prev`` the previous step's
    (zeros at t = 1, so step 1 uses ``d = -g``), ``d = g_prev - g`` and::

      dfc = sigmoid(|d|)                    version 0 (DiffGrad, DiffMod default)
      dfc = sigmoid(d)                      version 1
      dfc = 9 / (1 + exp(-|d| / 2)) - 4     version 2
      output = inner(g) * dfc

    When ``inner`` is :func:`scale_by_bounded_adam` its step is
    ``rate * m_t``, so this is DiffGrad's ``rate * (m_t * dfc)`` exactly:
    friction damps the momentum where the gradient barely changes (dfc near
    0.5) and lets it through where the gradient moves fast (dfc near 1).

    The previous gradient is *copied into the state*. The PyTorch DiffMod code
    that is widely copied keeps a reference to the gradient tensor instead,
    so when the training loop reuses gradient buffers in place ``d`` is 0 from
    step 2 on and friction collapses to a constant 0.5 (version 1 and 2
    likewise); torch-optimizer 0.3.0's ``DiffGrad`` stores a copy and is not
    affected. A functional state cannot alias: that bug cannot occur here.

    Put weight decay that should count as part of the gradient (coupled L2)
    *before* this wrapper, as DiffGrad does: the friction then sees
    ``g + wd * theta``.

    Args:
      inner: the transformation whose updates are scaled (for example
        :func:`scale_by_bounded_adam`). Extra arguments are passed through.
      version: 0, 1 or 2 (see above).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`WithFrictionState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from adamod_optax import with_friction
      >>> tx = with_friction(optax.sgd(1.0))
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.array([1.0, 1.0]), state)  # d = -1
      >>> print([f"{u:.4f}" for u in updates.tolist()])  # -1 * sigmoid(1)
      ['-0.7311', '-0.7311']
      >>> updates, state = tx.update(jnp.array([1.0, 3.0]), state)  # d = 0, -2
      >>> # sgd(1.0) gives -g, times [sigmoid(0), sigmoid(2)]
      >>> print([f"{u:.4f}" for u in updates.tolist()])
      ['-0.5000', '-2.6424']

    References:
      Dubey, Chakraborty, Roy, Mukherjee, Singh, Chaudhuri: "diffGrad: An
      Optimization Method for Convolutional Neural Networks",
      arXiv:1909.11015, 2019.
    """
    _base.check_friction_version(version)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params: optax.Params) -> WithFrictionState:
        return WithFrictionState(
            prev_grad=_base.zeros_like(params), inner_state=inner.init(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        new_updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args
        )

        def scale(u, g, g_prev):
            dt = _base.compute_dtype(u.dtype, g.dtype, g_prev.dtype)
            dfc = _friction_coefficient(g_prev.astype(dt), g.astype(dt), version)
            return (u.astype(dt) * dfc).astype(u.dtype)

        new_updates = _base.tree_map(scale, new_updates, updates, state.prev_grad)
        prev_grad = _base.tree_map(
            lambda g, g_prev: g.astype(g_prev.dtype), updates, state.prev_grad
        )
        return new_updates, WithFrictionState(prev_grad=prev_grad, inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def diffgrad(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    weight_decay_mode: WeightDecayMode = "coupled",
    friction_version: int = 0,
    nu_dtype: Optional[Any] = None,
    nesterov: bool = False,
    fast_path: FastPath = "auto",
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

    The positional arguments are ``optax.adamw``'s, in its order, and mean
    the same; ``weight_decay_mode`` and ``friction_version`` are keyword-only,
    ``weight_decay`` defaults to 0 (coupled L2 by default, as released) and
    ``nesterov=True`` is refused.

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the (uncorrected) ``sqrt(v_t)``, >= 0.
      eps_root: added to ``v_t`` inside the square root, >= 0 (0: as released).
      mu_dtype: storage dtype of the first moment.
      weight_decay: non-negative float or schedule.
      mask: where weight decay applies, as in ``optax.adamw``.
      weight_decay_mode: ``"coupled"`` (L2, as released) or ``"decoupled"``.
      friction_version: 0 (DiffGrad), 1 or 2; see :func:`with_friction`.
      nu_dtype: storage dtype of the second moment.
      nesterov: only ``False`` is accepted (``optax.adamw`` compatibility).
      fast_path: how the step is compiled (``"auto"``, ``"recompute"`` or
        ``"plain"``; speed and memory only), see :func:`scale_by_bounded_adam`.

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
    _base.check_nesterov("diffgrad", nesterov)
    _base.check_weight_decay_mode(weight_decay_mode)
    _base.check_friction_version(friction_version, "friction_version")
    core = with_friction(
        scale_by_bounded_adam(
            learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype=nu_dtype,
            fast_path=fast_path,
        ),
        friction_version,
    )
    return with_weight_decay(
        core, learning_rate=learning_rate, weight_decay=weight_decay, mask=mask,
        mode=weight_decay_mode,
    )


def diffmod(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    b3: float = _base.B3_DEFAULT,
    len_memory: Optional[float] = None,
    friction_version: int = 0,
    nu_dtype: Optional[Any] = None,
    nesterov: bool = False,
    fast_path: FastPath = "auto",
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

    The positional arguments are ``optax.adamw``'s, in its order, and mean
    the same; ``b3``, ``len_memory`` and ``friction_version`` are
    keyword-only, ``weight_decay`` defaults to 0 and ``nesterov=True`` is
    refused.

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the (uncorrected) ``sqrt(v_t)``, >= 0.
      eps_root: added to ``v_t`` inside the square root, >= 0 (0: as released).
      mu_dtype: storage dtype of the first moment.
      weight_decay: decoupled decay, non-negative float or schedule
        (``theta -= wd_t lr_t theta``, as AdaMod).
      mask: where weight decay applies, as in ``optax.adamw``.
      b3: decay of the average of learning rates, in [0, 1).
      len_memory: alternative spelling of ``b3 = 1 - 1/len_memory`` (>= 1).
      friction_version: 0 (default), 1 or 2; see :func:`with_friction`.
      nu_dtype: storage dtype of the second moment and the rate average.
      nesterov: only ``False`` is accepted (``optax.adamw`` compatibility).
      fast_path: how the step is compiled (``"auto"``, ``"recompute"`` or
        ``"plain"``; speed and memory only), see :func:`scale_by_bounded_adam`.

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
    _base.check_nesterov("diffmod", nesterov)
    b3 = _base.resolve_b3(b3, len_memory)
    _base.check_friction_version(friction_version, "friction_version")
    core = with_friction(
        scale_by_bounded_adam(
            learning_rate,
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            rate_transform=scale_by_momental_bound(b3, dtype=nu_dtype),
            nu_dtype=nu_dtype,
            fast_path=fast_path,
        ),
        friction_version,
    )
    return with_weight_decay(
        core, learning_rate=learning_rate, weight_decay=weight_decay, mask=mask,
        mode="decoupled",
    )
