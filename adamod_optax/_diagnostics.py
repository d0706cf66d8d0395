"""Effective per-parameter learning rates, summarised for logging.

The AdaMod paper's argument is about the *distribution* of Adam's
per-parameter learning rates: without warmup some of them are enormous in the
first steps (its Figure 1), and AdaMod's momental bound cuts them back (its
Figure 3). :func:`learning_rate_summary` recomputes those rates from an
optimizer state and reduces them to a few small arrays (a log-spaced
histogram, quantiles, the maximum, the fraction of elements where the bound
is active) that are cheap to compute under ``jax.jit`` and to log every step.

Rates, with ``t`` the number of updates applied (``state.count``) and
``lr_t = learning_rate(t - 1)`` the rate used by the last update:

* ``optax.adam`` / ``optax.adamw`` (:class:`optax.ScaleByAdamState`)::

    rate = lr_t / (sqrt(v_t / (1 - b2^t)) + eps)          (multiplies m_hat_t)

* this package's core (:class:`~adamod_optax.ScaleByBoundedAdamState`), for
  ``bias_correction="folded"`` (the released AdaMod; the rate multiplies the
  raw ``m_t``, so it carries ``1 / (1 - b1^t)``, a factor that fades within
  ~50 steps at ``b1 = 0.9``)::

    eta_t = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t) + eps)

  and for ``"explicit"`` (the paper's Algorithm 2) the Adam formula above.
  With a :class:`~adamod_optax.ScaleByMomentalBoundState` inside its
  ``rate_state`` the bounded rate is ``min(eta_t, s_t)`` and the bound is
  *active* where ``s_t < eta_t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamod_optax._adamod import ScaleByMomentalBoundState
from adamod_optax._core import ScaleByBoundedAdamState

DEFAULT_QUANTILES = (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)


class LearningRateSummary(NamedTuple):
    """A small summary of per-parameter effective learning rates.

    Attributes:
      count: int32 scalar, the optimizer's update count ``t``.
      histogram: int32 ``[num_bins]`` counts of ``log10(rate)`` in equal bins
        over ``[log10_min, log10_max]``; rates outside go to the end bins, zero
        rates to the first. Elements left out (see ``grads``) are not counted.
      bin_edges: float32 ``[num_bins + 1]`` rate values of the bin edges.
      quantiles: float32, the requested quantiles of the (bounded) rates.
      maximum: float32 scalar, the largest (bounded) rate.
      unbounded_maximum: float32 scalar, the largest rate before the bound
        (equal to ``maximum`` for Adam).
      fraction_bounded: float32 scalar, the fraction of counted elements where
        the momental bound is active (``s_t < eta_t``); 0 for Adam.
      num_counted: int32 scalar, how many elements were counted.
    """

    count: jax.Array
    histogram: jax.Array
    bin_edges: jax.Array
    quantiles: jax.Array
    maximum: jax.Array
    unbounded_maximum: jax.Array
    fraction_bounded: jax.Array
    num_counted: jax.Array


_STATE_TYPES = (ScaleByBoundedAdamState, optax.ScaleByAdamState)


def _find(tree: Any, types: tuple) -> list:
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, types))
    return [leaf for leaf in leaves if isinstance(leaf, types)]


def find_adam_state(opt_state: optax.OptState):
    """The single Adam-style state inside ``opt_state`` (chains, wrappers).

    Looks through tuples (``optax.chain``), ``optax.inject_hyperparams``,
    ``optax.masked``, ``optax.MultiSteps`` and similar NamedTuple wrappers for
    a :class:`ScaleByBoundedAdamState` or an ``optax.ScaleByAdamState``.

    Raises:
      ValueError: when there is none or more than one.
    """
    found = _find(opt_state, _STATE_TYPES)
    if len(found) != 1:
        raise ValueError(
            "expected exactly one ScaleByBoundedAdamState or optax.ScaleByAdamState in "
            f"`opt_state`, found {len(found)}; pass the sub-state you want summarised."
        )
    return found[0]


_INJECT_TYPES = tuple(
    t for t in (getattr(optax, "InjectHyperparamsState", None),
                getattr(optax, "InjectStatefulHyperparamsState", None)) if t is not None
)


def _injected(opt_state: optax.OptState, name: str) -> Optional[Any]:
    for s in _find(opt_state, _INJECT_TYPES):
        if name in s.hyperparams:
            return s.hyperparams[name]
    return None


def effective_learning_rates(
    opt_state: optax.OptState,
    learning_rate: Optional[optax.ScalarOrSchedule] = None,
    *,
    b1: Optional[float] = None,
    b2: Optional[float] = None,
    eps: Optional[float] = None,
    bias_correction: Optional[str] = None,
) -> tuple[optax.Updates, optax.Updates]:
    """Per-parameter rates ``(eta, bounded)`` recomputed from an optimizer state.

    Args:
      opt_state: the state of ``optax.adam``/``adamw``, of
        :func:`adamod_optax.adamod`, or of any chain or wrapper holding one
        (see :func:`find_adam_state`).
      learning_rate: the float or schedule given to the optimizer (a schedule
        is evaluated at ``count - 1``, the last update's index). ``None`` reads
        it from an ``optax.inject_hyperparams`` state.
      b1, b2, eps: the optimizer's; ``None`` reads them from an
        ``inject_hyperparams`` state, else uses 0.9, 0.999, 1e-8.
      bias_correction: ``"folded"`` or ``"explicit"``; default ``"folded"``
        for this package's state (``adamod``'s released algorithm; pass
        ``"explicit"`` for ``algorithm="paper"``) and ``"explicit"`` for
        ``optax.ScaleByAdamState``.

    Returns:
      ``(eta, bounded)``: trees like the moments, float32 or wider. ``bounded``
      is ``min(eta, s)`` when a :class:`ScaleByMomentalBoundState` is present,
      else ``eta`` itself.
    """
    state = find_adam_state(opt_state)

    def hyper(value, name, default):
        if value is not None:
            return value
        injected = _injected(opt_state, name)
        return default if injected is None else injected

    if learning_rate is None:
        learning_rate = _injected(opt_state, "learning_rate")
        if learning_rate is None:
            raise ValueError(
                "`learning_rate` is needed (the float or schedule given to the optimizer) "
                "unless the state comes from optax.inject_hyperparams."
            )
    b1 = hyper(b1, "b1", 0.9)
    b2 = hyper(b2, "b2", 0.999)
    eps = hyper(eps, "eps", 1e-8)
    ours = isinstance(state, ScaleByBoundedAdamState)
    if bias_correction is None:
        bias_correction = "folded" if ours else "explicit"
    if bias_correction not in ("folded", "explicit"):
        raise ValueError(
            f"`bias_correction` must be 'folded' or 'explicit', got {bias_correction!r}."
        )
    nu = state.nu if not (ours and state.nu_max is not None) else state.nu_max
    count = jnp.asarray(state.count)
    prev = jnp.maximum(count - 1, 0)
    lr = learning_rate(prev) if callable(learning_rate) else learning_rate
    t = jnp.maximum(count, 1).astype(jnp.float32)

    def rate(v):
        dt = jnp.promote_types(v.dtype, jnp.float32)
        v = v.astype(dt)
        lr_, b1_, b2_, eps_ = (jnp.asarray(x, dt) for x in (lr, b1, b2, eps))
        bc1 = 1 - b1_ ** t.astype(dt)
        bc2 = 1 - b2_ ** t.astype(dt)
        if bias_correction == "folded":
            return lr_ * jnp.sqrt(bc2) / bc1 / (jnp.sqrt(v) + eps_)
        return lr_ / (jnp.sqrt(v / bc2) + eps_)

    eta = jax.tree_util.tree_map(rate, nu)
    bounded = eta
    if ours:
        bound_states = _find(state.rate_state, (ScaleByMomentalBoundState,))
        if bound_states:
            bounded = jax.tree_util.tree_map(
                lambda e, s: jnp.minimum(e, s.astype(e.dtype)), eta, bound_states[0].rate_avg
            )
    return eta, bounded


def learning_rate_summary(
    opt_state: optax.OptState,
    learning_rate: Optional[optax.ScalarOrSchedule] = None,
    *,
    grads: Optional[optax.Updates] = None,
    skip_never_updated: bool = True,
    num_bins: int = 48,
    log10_min: float = -8.0,
    log10_max: float = 4.0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    **rate_kwargs: Any,
) -> LearningRateSummary:
    """Summarises the effective learning rates of an optimizer state.

    Jit-friendly (``jax.jit(learning_rate_summary, static_argnames=...)`` or
    call it inside a jitted step); the outputs are a few small arrays.

    Args:
      opt_state: see :func:`effective_learning_rates`.
      learning_rate: see :func:`effective_learning_rates`.
      grads: optional gradients of the last step, a tree like the moments;
        elements whose gradient is exactly zero are left out (for example the
        embedding rows of tokens absent from the batch, whose Adam rates can be
        huge without moving anything).
      skip_never_updated: leave out elements with ``v_t == 0`` (never had a
        nonzero gradient; their Adam rate is ``lr / eps``).
      num_bins, log10_min, log10_max: the histogram's log10-spaced bins.
      quantiles: quantile levels in [0, 1].
      **rate_kwargs: ``b1``, ``b2``, ``eps``, ``bias_correction`` as in
        :func:`effective_learning_rates`.

    Returns:
      A :class:`LearningRateSummary`. With no element counted, the quantiles
      and maxima are NaN and the fraction is 0.
    """
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be >= 1, got {num_bins}.")
    if not log10_min < log10_max:
        raise ValueError(f"need log10_min < log10_max, got {log10_min}, {log10_max}.")
    q = jnp.asarray(quantiles, jnp.float32)
    if any(not 0.0 <= float(x) <= 1.0 for x in quantiles):
        raise ValueError(f"`quantiles` must lie in [0, 1], got {tuple(quantiles)}.")
    state = find_adam_state(opt_state)
    nu = state.nu_max if isinstance(state, ScaleByBoundedAdamState) and \
        state.nu_max is not None else state.nu
    eta, bounded = effective_learning_rates(opt_state, learning_rate, **rate_kwargs)

    def flat(tree):
        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves:
            return jnp.zeros((0,), jnp.float32)
        return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])

    e, b = flat(eta), flat(bounded)
    keep = jnp.ones(e.shape, bool)
    if skip_never_updated:
        keep &= flat(nu) > 0
    if grads is not None:
        gl = jax.tree_util.tree_leaves(grads)
        if len(gl) != len(jax.tree_util.tree_leaves(eta)):
            raise ValueError("`grads` must have the same leaves as the optimizer's moments.")
        keep &= jnp.concatenate([jnp.ravel(jnp.abs(g)).astype(jnp.float32) for g in gl]) > 0
    n = jnp.sum(keep)
    logb = jnp.log10(jnp.maximum(b, jnp.finfo(jnp.float32).tiny))
    width = (log10_max - log10_min) / num_bins
    idx = jnp.clip(jnp.floor((logb - log10_min) / width), 0, num_bins - 1).astype(jnp.int32)
    hist = jnp.zeros((num_bins,), jnp.int32).at[idx].add(keep.astype(jnp.int32))
    edges = jnp.asarray(10.0, jnp.float32) ** jnp.linspace(
        log10_min, log10_max, num_bins + 1, dtype=jnp.float32)
    masked = jnp.where(keep, b, jnp.nan)
    qs = jnp.nanquantile(masked, q) if b.size else jnp.full(q.shape, jnp.nan)
    nan = jnp.asarray(jnp.nan, jnp.float32)
    mx = jnp.where(n > 0, jnp.max(jnp.where(keep, b, -jnp.inf), initial=-jnp.inf), nan)
    umx = jnp.where(n > 0, jnp.max(jnp.where(keep, e, -jnp.inf), initial=-jnp.inf), nan)
    active = jnp.sum(keep & (b < e))
    frac = jnp.where(n > 0, active / jnp.maximum(n, 1), 0.0).astype(jnp.float32)
    return LearningRateSummary(
        count=jnp.asarray(state.count, jnp.int32),
        histogram=hist,
        bin_edges=edges,
        quantiles=qs.astype(jnp.float32),
        maximum=mx.astype(jnp.float32),
        unbounded_maximum=umx.astype(jnp.float32),
        fraction_bounded=frac,
        num_counted=n.astype(jnp.int32),
    )
