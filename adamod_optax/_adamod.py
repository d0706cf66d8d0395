"""AdaMod: the momental bound and the ready-to-use optimizer."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamod_optax import _base
from adamod_optax._core import (
    BoundStep,
    FastPath,
    RateBound,
    rate_bound,
    scale_by_bounded_adam,
    with_weight_decay,
)

Algorithm = Literal["released", "paper"]


class ScaleByMomentalBoundState(NamedTuple):
    """State of :func:`scale_by_momental_bound`.

    Attributes:
      rate_avg: ``s_t``, the exponential moving average (decay ``b3``) of the
        learning rates it has seen, learning-rate schedule included; starts at
        zero and is not bias corrected. Same tree as the params, real dtype.
    """

    rate_avg: optax.Updates


def momental_min(eta: jax.Array, s: jax.Array) -> jax.Array:
    """``min(eta_t, s_t)`` of one leaf, in their common compute dtype, cast to ``eta``'s.

    The elementwise piece of :func:`scale_by_momental_bound`, called by its
    step and, with the stored ``s_t``, by the diagnostics.
    """
    dt = _base.compute_dtype(eta.dtype, s.dtype)
    return jnp.minimum(eta.astype(dt), s.astype(dt)).astype(eta.dtype)


def store_rate_avg(s: jax.Array, dtype: Any) -> jax.Array:
    """``s_t`` cast to its storage ``dtype``, saturating at that dtype's largest finite value.

    A zero second moment makes a rate of about ``lr / eps`` (1e5 at lr 1e-3, eps 1e-8), past
    float16's 65504: cast as is, ``s`` would become +inf and stay there (and ``0 * inf`` is
    NaN at ``b3 = 0``). Saturated, the bound it stores is still far above any rate Adam
    applies, and the step's own ``min(eta_t, s_t)`` uses the unrounded ``s_t``. A no-op when
    the storage dtype is as wide as the compute dtype (the default float32 path).
    """
    dtype = jnp.dtype(dtype)
    if jnp.finfo(dtype).max < jnp.finfo(s.dtype).max:
        s = jnp.minimum(s, jnp.asarray(jnp.finfo(dtype).max, s.dtype))
    return s.astype(dtype)


def applied_momental(state: ScaleByMomentalBoundState, eta: optax.Updates) -> optax.Updates:
    """The rates the last update applied (a tree), from its stored ``s_t``: exact where
    ``s_t`` is stored in its compute dtype, otherwise within its storage rounding."""
    return _base.tree_map(momental_min, eta, state.rate_avg)


def scale_by_momental_bound(b3: float = 0.999, *, dtype: Optional[Any] = None) -> RateBound:
    r"""AdaMod's momental bound over per-parameter learning rates.

    This is a *rate transformation*: its inputs are learning rates ``eta_t``
    (for example from :func:`scale_by_bounded_adam`), not gradients::

      s_t      = b3 s_{t-1} + (1 - b3) eta_t,   s_0 = 0
      output_t = min(eta_t, s_t)

    Because ``s`` starts at zero the first steps are ``(1 - b3)`` times smaller
    than Adam's, growing over roughly ``1 / (1 - b3)`` steps: a built-in
    warmup. ``b3 = 0`` is the identity. The state matters: rebuilding the
    optimizer every step restarts the bound at zero.

    Args:
      b3: decay of the rate average, in [0, 1); the memory is about
        ``1 / (1 - b3)`` steps. ``b3 = 1`` is rejected: it freezes updates at 0.
      dtype: storage dtype of ``s_t`` (default: the param's real dtype).

    Returns:
      A :class:`RateBound` (an ``optax.GradientTransformationExtraArgs``) with
      state :class:`ScaleByMomentalBoundState`. Chain it with other bounds by
      :func:`chain_bounds` to keep the core's fast path.

    References:
      Ding, Ren, Luo, Sun: "An Adaptive and Momental Bound Method for
      Stochastic Learning", arXiv:1910.12249, 2019.
    """
    _base.check_decay_rate("b3", b3)

    def init_fn(params: optax.Params) -> ScaleByMomentalBoundState:
        return ScaleByMomentalBoundState(rate_avg=_base.zeros_like(params, dtype, real=True))

    def bound(eta, s):
        s_new = _base.ema(b3, s, eta, _base.compute_dtype(eta.dtype, s.dtype))
        return momental_min(eta, s_new), (store_rate_avg(s_new, s.dtype),)

    def bound_from_new(eta, old, new):
        # Reads s_t from the new state where it is stored in its compute dtype
        # (bit-identical); elsewhere (for example bfloat16 storage) recomputes
        # it from the old state, unless there is none (the diagnostics, after
        # the step): then the stored s_t.
        (s_new,) = new
        dt = _base.compute_dtype(eta.dtype, s_new.dtype)
        if s_new.dtype != dt and old is not None:
            s_new = _base.ema(b3, old[0], eta, dt)
        return momental_min(eta, s_new)

    def split_fn(state, params=None, **extra_args):
        del params, extra_args
        return BoundStep(
            arrays=(state.rate_avg,),
            bound=bound,
            bound_from_new=bound_from_new,
            finish=lambda new: ScaleByMomentalBoundState(rate_avg=new[0]),
        )

    return rate_bound(init_fn, split_fn, name="scale_by_momental_bound")


def adamod(
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
    algorithm: Algorithm = "released",
    nu_dtype: Optional[Any] = None,
    nesterov: bool = False,
    fast_path: FastPath = "auto",
) -> optax.GradientTransformationExtraArgs:
    r"""AdaMod: Adam whose per-parameter learning rates are capped by their EMA.

    The default ``algorithm="released"`` reproduces the authors' released code
    (and torch-optimizer's ``AdaMod``) to float64 precision. With ``t`` the
    1-based step and ``lr_t = learning_rate(t - 1)``::

      m_t   = b1 m_{t-1} + (1 - b1) g_t
      v_t   = b2 v_{t-1} + (1 - b2) g_t^2
      eta_t = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t) + eps)
      s_t   = b3 s_{t-1} + (1 - b3) eta_t,              s_0 = 0
      theta_t = theta_{t-1} - wd_t lr_t theta_{t-1} - min(eta_t, s_t) m_t

    The scheduled learning rate sits *inside* the ``b3`` average. Step 1 moves
    ``(1 - b3)`` times as far as Adam's; ``b3 = 0`` is exactly Adam in this
    form (eps on the uncorrected ``sqrt(v_t)``).

    ``algorithm="paper"`` is Algorithm 2 of the paper, which bias-corrects the
    moments explicitly and averages the rate without ``1/(1 - b1^t)``::

      eta_t = lr_t / (sqrt(v_t / (1 - b2^t)) + eps)
      s_t   = b3 s_{t-1} + (1 - b3) eta_t
      theta_t = theta_{t-1} - wd_t lr_t theta_{t-1} - min(eta_t, s_t) m_t / (1 - b1^t)

    The two are not the same optimizer: the released code puts ``1/(1-b1^t)``
    inside the averaged rate, so the average carries the early, large
    corrections. With a constant gradient the released step is 1.0x, 2.2x,
    1.5x and 1.02x the paper's at t = 1, 10, 50, 1000; over 50 steps of N(0, 1)
    gradients at lr 1e-3 the parameters differ by 2.3e-3 after moving 3.0e-3.

    The optimizer is :func:`scale_by_bounded_adam` with
    :func:`scale_by_momental_bound` as its rate transformation, then
    decoupled weight decay and ``optax.scale(-1.0)``; its state is the tuple
    ``(core_state, decay_state, EmptyState())`` of that chain, with a single
    ``count`` (``optax.tree.get(state, "count")`` is the number of updates
    applied, schedules included).

    **Coming from optax.adamw.** The positional arguments are
    ``optax.adamw``'s, in its order (``learning_rate, b1, b2, eps, eps_root,
    mu_dtype, weight_decay, mask``) and mean the same; everything specific to
    AdaMod is keyword-only. Two differences: ``weight_decay`` defaults to 0
    (as released; ``optax.adamw``'s default is 1e-4), and ``nesterov=True``
    is refused.

    Args:
      learning_rate: a non-negative float or an optax schedule.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the square root of the second moment, >= 0.
      eps_root: added to the second moment inside the square root, >= 0
        (see :func:`scale_by_bounded_adam`); 0 reproduces the release.
      mu_dtype: storage dtype of the first moment (e.g. ``jnp.bfloat16`` to
        save memory, ``jnp.float32`` for float16 params).
      weight_decay: decoupled weight decay ``wd``, a non-negative float or a
        schedule; applied as ``theta -= wd_t * lr_t * theta``.
      mask: where weight decay applies, as in ``optax.adamw``: a pytree of
        booleans (or prefix) or a callable params -> pytree.
      b3: decay of the average of learning rates, in [0, 1) (keyword-only).
        The paper recommends 0.999 or 0.9999 (the released docstring says
        0.9999, its code uses 0.999, as here).
      len_memory: alternative spelling of ``b3 = 1 - 1/len_memory`` (>= 1);
        give it or ``b3``, not both.
      algorithm: ``"released"`` (default) or ``"paper"``.
      nu_dtype: storage dtype of the second moment and the rate average.
      nesterov: only ``False`` is accepted (``optax.adamw`` compatibility).
      fast_path: how the step is compiled, ``"auto"`` (default),
        ``"recompute"`` or ``"plain"``; see :func:`scale_by_bounded_adam`.
        Speed and memory only: the same expressions, equal to 1 ulp.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: at construction, for a negative learning rate, eps, eps_root
        or weight decay, b1/b2/b3 outside [0, 1), len_memory < 1, both b3 and
        len_memory, an unknown algorithm, or ``nesterov=True``. Schedules and
        traced values (hyperparameters injected by ``optax.inject_hyperparams``
        inside ``jit``) cannot be checked there.

    Notes:
      With ``optax.inject_hyperparams`` pass ``hyperparam_dtype=jnp.float32``
      when params are bfloat16/float16: otherwise b3 = 0.999 becomes 1.0 and
      training stops; this package raises a ``ValueError`` in that case. A
      callable ``mask`` must be listed in ``static_args=("mask",)``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from adamod_optax import adamod
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> tx = adamod(learning_rate=1e-2, weight_decay=1e-4)
      >>> state = tx.init(params)
      >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
      >>> updates, state = tx.update(grads, state, params)
      >>> params = optax.apply_updates(params, updates)

    References:
      Ding, Ren, Luo, Sun: "An Adaptive and Momental Bound Method for
      Stochastic Learning", arXiv:1910.12249, 2019.
    """
    _base.check_nesterov("adamod", nesterov)
    if algorithm not in ("released", "paper"):
        raise ValueError(f"`algorithm` must be 'released' or 'paper', got {algorithm!r}.")
    b3 = _base.resolve_b3(b3, len_memory)
    core = scale_by_bounded_adam(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        rate_transform=scale_by_momental_bound(b3, dtype=nu_dtype),
        bias_correction="folded" if algorithm == "released" else "explicit",
        nu_dtype=nu_dtype,
        fast_path=fast_path,
    )
    return with_weight_decay(
        core, learning_rate=learning_rate, weight_decay=weight_decay, mask=mask,
        mode="decoupled",
    )
