"""DiffGrad's friction: scale an optimizer's step by how fast the gradient changes."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adamod_optax import _base


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


def check_version(version: Any, name: str = "version") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``version`` is 0, 1 or 2 (or traced)."""
    if _base.is_traced(version):
        return
    value = None if isinstance(version, str) else _base.concrete_float(version)
    if value is None or value not in (0.0, 1.0, 2.0):
        raise ValueError(f"`{name}` (the friction shape) must be 0, 1 or 2, got {version!r}.")


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
    check_version(version)
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
