"""Effective per-parameter learning rates, summarised for logging.

The AdaMod paper's argument is about the *distribution* of Adam's
per-parameter learning rates: without warmup some of them are enormous in the
first steps (its Figure 1), and AdaMod's momental bound cuts them back (its
Figure 3). :func:`learning_rate_summary` recomputes those rates from an
optimizer state and reduces them to a few small arrays (a log-spaced
histogram, quantiles, the maximum, the fraction of elements where the bound
is active) that are cheap to compute under ``jax.jit`` and to log every step.

**Where the hyperparameters come from.** This package's core records, in
:attr:`~adamod_optax.ScaleByBoundedAdamState.rate_hyperparams`, the learning
rate its last update used (schedules and ``optax.inject_hyperparams``
included), ``b1``, ``b2``, ``eps``, ``eps_root`` and the bias-correction form;
AdaBound's bound records the bounds it applied. The rates are recomputed
from those, with the step's own arithmetic, so they cannot disagree with the
optimizer, and passing hyperparameters for such a state is refused.
``optax.adam``/``adamw`` states record none of them: pass ``learning_rate``,
``b2`` and ``eps`` (Adam's rate has no ``b1``; or wrap the optimizer in
``optax.inject_hyperparams``, whose state holds them); nothing is defaulted.

Rates, with ``t`` the number of updates applied (``count``) and ``lr_t`` the
learning rate of the last update:

* ``optax.adam`` / ``optax.adamw`` (:class:`optax.ScaleByAdamState`)::

    rate = lr_t / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)      (multiplies m_hat_t)

* this package's core (:class:`~adamod_optax.ScaleByBoundedAdamState`), for
  ``bias_correction="folded"`` (the released AdaMod; the rate multiplies the
  raw ``m_t``, so it carries ``1 / (1 - b1^t)``, a factor that fades within
  ~50 steps at ``b1 = 0.9``)::

    eta_t = lr_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t + eps_root) + eps)

  and for ``"explicit"`` (the paper's Algorithm 2) the Adam formula above.
  The bounds of its ``rate_state`` are applied in chain order:
  :class:`~adamod_optax.ScaleByMomentalBoundState` gives ``min(eta_t, s_t)``,
  :class:`~adamod_optax.ClipByDynamicBoundState` ``clip(eta_t, lower_t,
  upper_t)``; the bound is *active* where the result differs from ``eta_t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamod_optax import _base
from adamod_optax._adabound import ClipByDynamicBoundState
from adamod_optax._adamod import ScaleByMomentalBoundState
from adamod_optax._core import RATE_HYPERPARAMS, ScaleByBoundedAdamState

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
        a rate bound is active (the bounded rate differs from ``eta_t`` by more
        than rounding, 4 ulps of the rates' or the stored ``s_t``'s dtype: for
        AdaMod ``s_t < eta_t``, for AdaBound ``eta_t`` outside its bounds);
        0 for Adam.
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
_BOUND_TYPES = (ScaleByMomentalBoundState, ClipByDynamicBoundState)
_HYPER_NAMES = ("learning_rate", "b1", "b2", "eps", "eps_root")


def _is_flax_variable(x: Any) -> bool:
    return (type(x).__module__ or "").startswith("flax.") and hasattr(x, "get_value")


def _pure(opt_state: Any) -> Any:
    """``opt_state`` with Flax NNX variables (``OptArray``) replaced by their arrays.

    Also accepts an ``nnx.Optimizer`` (its ``opt_state`` is read). Works on
    concrete and traced values (inside ``nnx.jit``).
    """
    if (type(opt_state).__module__ or "").startswith("flax.") and hasattr(
        opt_state, "opt_state"
    ):
        opt_state = opt_state.opt_state
    return jax.tree_util.tree_map(
        lambda x: x.get_value() if _is_flax_variable(x) else x, opt_state,
        is_leaf=_is_flax_variable,
    )


def _find(tree: Any, types: tuple) -> list:
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, types))
    return [leaf for leaf in leaves if isinstance(leaf, types)]


def find_adam_state(opt_state: optax.OptState):
    """The single Adam-style state inside ``opt_state`` (chains, wrappers).

    Looks through tuples (``optax.chain``), ``optax.inject_hyperparams``,
    ``optax.masked``, ``optax.MultiSteps``, Flax NNX optimizer states and
    similar wrappers for a :class:`ScaleByBoundedAdamState` or an
    ``optax.ScaleByAdamState``.

    Raises:
      ValueError: when there is none or more than one.
    """
    found = _find(_pure(opt_state), _STATE_TYPES)
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


def _compute_dtype(mu: jax.Array, nu: jax.Array) -> jnp.dtype:
    """The real dtype the step formed this leaf's rate in (see scale_by_bounded_adam)."""
    return _base.real_dtype(_base.compute_dtype(mu.dtype, nu.dtype))


def _nonzero(den: jax.Array) -> jax.Array:
    # As the step: eps = 0 and v = 0 gives rate lr_t * c / 1, not inf (a no-op for eps > 0).
    return jnp.where(den == 0, 1, den)


_ROUNDING_ULPS = 4


def _core_rates(state: ScaleByBoundedAdamState) -> tuple[Any, Any, Any]:
    """(eta, bounded, active) of this package's core, from what its last update recorded.

    ``active`` is where the bound changed the rate by more than rounding
    (``_ROUNDING_ULPS`` ulps of the leaf's dtype, or of ``s_t``'s storage dtype).
    """
    record = dict(zip(RATE_HYPERPARAMS, list(state.rate_hyperparams)))
    nu = state.nu if state.nu_max is None else state.nu_max

    def rate(m, v):
        rdt = _compute_dtype(m, v)
        t = jnp.asarray(state.count).astype(rdt)
        lr_t, b1, b2, eps, eps_root = (record[k].astype(rdt) for k in _HYPER_NAMES)
        bc1 = 1 - b1**t
        bc2 = 1 - b2**t
        v = v.astype(rdt)
        folded = lr_t * jnp.sqrt(bc2) / bc1 / _nonzero(jnp.sqrt(v + eps_root) + eps)
        explicit = lr_t / _nonzero(jnp.sqrt(v / bc2 + eps_root) + eps)
        return jnp.where(record["explicit"] > 0, explicit, folded)

    eta = _base.tree_map(rate, state.mu, nu)
    bounds = _find(state.rate_state, _BOUND_TYPES)
    known = sum(len(jax.tree_util.tree_leaves(b)) for b in bounds)
    if known != len(jax.tree_util.tree_leaves(state.rate_state)):
        raise ValueError(
            "the core's rate_transform holds state this module does not know how to "
            "read (only scale_by_momental_bound and clip_by_dynamic_bound are "
            "understood), so the bounded rates cannot be recomputed."
        )
    bounded = eta
    # Relative rounding of each leaf's bound: recomputing the rates outside the
    # step (another XLA fusion, a bfloat16-stored s_t) moves them by a few ulps.
    ulp = _base.tree_map(lambda e: jnp.asarray(jnp.finfo(e.dtype).eps, e.dtype), eta)
    for b in bounds:
        if isinstance(b, ScaleByMomentalBoundState):
            bounded = _base.tree_map(
                lambda e, s: jnp.minimum(
                    e.astype(_base.compute_dtype(e.dtype, s.dtype)), s
                ).astype(e.dtype),
                bounded, b.rate_avg,
            )
            ulp = _base.tree_map(
                lambda u, s: jnp.maximum(u, jnp.finfo(s.dtype).eps).astype(u.dtype),
                ulp, b.rate_avg,
            )
        else:
            bounded = _base.tree_map(
                lambda e, lo=b.lower, hi=b.upper: jnp.minimum(
                    jnp.maximum(e, lo.astype(e.dtype)), hi.astype(e.dtype)
                ),
                bounded,
            )
    active = _base.tree_map(
        lambda e, x, u: jnp.abs(x - e) > _ROUNDING_ULPS * u * jnp.abs(e), eta, bounded, ulp
    )
    return eta, bounded, active


def _adam_rates(opt_state: Any, state: Any, given: dict) -> Any:
    """optax.scale_by_adam's rates; hyperparameters given or from inject_hyperparams."""
    names = ("learning_rate", "b2", "eps", "eps_root")  # Adam's rate has no b1
    values = {}
    for name in names:
        value = given.get(name)
        if value is None:
            value = _injected(opt_state, name)
        values[name] = value
    if values["eps_root"] is None:
        values["eps_root"] = 0.0  # optax.adam's default; documented
    missing = [n for n in names if values[n] is None]
    if missing:
        raise ValueError(
            "an optax.ScaleByAdamState (optax.adam/adamw) does not record its "
            f"hyperparameters: pass {', '.join(f'`{n}`' for n in missing)} (the "
            "values given to the optimizer, a schedule for `learning_rate`), or "
            "build the optimizer with optax.inject_hyperparams, whose state holds them."
        )
    count = jnp.asarray(state.count)
    lr = values["learning_rate"]
    if _base.is_schedule(lr):
        lr = lr(jnp.maximum(count - 1, 0))

    def rate(v):
        dt = jnp.promote_types(v.dtype, jnp.float32)
        lr_, b2, eps, eps_root = (
            jnp.asarray(values[k] if k != "learning_rate" else lr).astype(dt) for k in names
        )
        t = jnp.maximum(count, 1).astype(dt)
        return lr_ / (jnp.sqrt(v.astype(dt) / (1 - b2**t) + eps_root) + eps)

    return _base.tree_map(rate, state.nu)


def _rates(opt_state, learning_rate, hyperparams):
    """(eta, bounded, active) for any supported state; see effective_learning_rates."""
    opt_state = _pure(opt_state)
    state = find_adam_state(opt_state)
    given = dict(learning_rate=learning_rate, **hyperparams)
    if isinstance(state, ScaleByBoundedAdamState):
        passed = [k for k, v in given.items() if v is not None]
        if passed:
            raise ValueError(
                f"do not pass {', '.join(f'`{k}`' for k in passed)}: this package's "
                "optimizer state records the hyperparameters its last update used "
                "(ScaleByBoundedAdamState.rate_hyperparams), so the rates are "
                "recomputed from those."
            )
        return _core_rates(state)
    unknown = set(given) - {"learning_rate", "b2", "eps", "eps_root"}
    if unknown:
        raise TypeError(
            f"unexpected hyperparameters {sorted(unknown)} for an optax.ScaleByAdamState: "
            "its rates need `learning_rate`, `b2`, `eps` and `eps_root` only (no b1)."
        )
    eta = _adam_rates(opt_state, state, given)
    return eta, eta, _base.tree_map(lambda e: jnp.zeros(e.shape, bool), eta)


def effective_learning_rates(
    opt_state: optax.OptState,
    learning_rate: Optional[optax.ScalarOrSchedule] = None,
    *,
    b2: Optional[float] = None,
    eps: Optional[float] = None,
    eps_root: Optional[float] = None,
) -> tuple[optax.Updates, optax.Updates]:
    """Per-parameter rates ``(eta, bounded)`` recomputed from an optimizer state.

    Args:
      opt_state: the state of an optimizer of this package, of
        ``optax.adam``/``adamw``, or of any chain or wrapper holding one
        (``optax.chain``, ``inject_hyperparams``, ``MultiSteps``, ``masked``);
        a Flax ``nnx.Optimizer`` or its ``opt_state`` also works (inside
        ``nnx.jit`` too). See :func:`find_adam_state`.
      learning_rate: only for an ``optax.ScaleByAdamState``: the float or
        schedule given to the optimizer (a schedule is evaluated at
        ``count - 1``, the last update's index). ``None`` reads it from an
        ``optax.inject_hyperparams`` state.
      b2, eps, eps_root: only for an ``optax.ScaleByAdamState``, as for
        ``learning_rate``; ``eps_root`` defaults to 0 (optax.adam's default),
        the others are required unless ``inject_hyperparams`` holds them.
        (Adam's rate ``lr_t / (sqrt(v_hat_t + eps_root) + eps)`` has no ``b1``.)

    Returns:
      ``(eta, bounded)``: trees like the moments, float32 or wider. ``bounded``
      is ``eta`` after the rate bounds recorded in the core's ``rate_state``
      (``eta`` itself for Adam).

    Raises:
      ValueError: for a state of this package given any hyperparameter (it
        records them itself), for an ``optax.ScaleByAdamState`` missing one
        (the message names what to pass), and for no or several Adam-style
        states in ``opt_state``.
    """
    eta, bounded, _ = _rates(opt_state, learning_rate, dict(b2=b2, eps=eps, eps_root=eps_root))
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
    **hyperparams: Any,
) -> LearningRateSummary:
    """Summarises the effective learning rates of an optimizer state.

    Jit-friendly (``jax.jit(learning_rate_summary, static_argnames=...)`` or
    call it inside a jitted step); the outputs are a few small arrays.

    Args:
      opt_state: see :func:`effective_learning_rates`.
      learning_rate: only for ``optax.adam``/``adamw`` states, see
        :func:`effective_learning_rates`.
      grads: optional gradients of the last step, a tree like the params (or
        the moments); elements whose gradient is exactly zero are left out
        (for example the embedding rows of tokens absent from the batch, whose
        Adam rates can be huge without moving anything).
      skip_never_updated: leave out elements with ``v_t == 0`` (never had a
        nonzero gradient; their Adam rate is ``lr / eps``).
      num_bins, log10_min, log10_max: the histogram's log10-spaced bins.
      quantiles: quantile levels in [0, 1].
      **hyperparams: ``b2``, ``eps``, ``eps_root``, only for
        ``optax.adam``/``adamw`` states, as in :func:`effective_learning_rates`.

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
    opt_state = _pure(opt_state)
    state = find_adam_state(opt_state)
    nu = state.nu_max if isinstance(state, ScaleByBoundedAdamState) and \
        state.nu_max is not None else state.nu
    eta, bounded, active = _rates(opt_state, learning_rate, hyperparams)

    def flat(tree, dtype=jnp.float32):
        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves:
            return jnp.zeros((0,), dtype)
        return jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves])

    e, b = flat(eta), flat(bounded)
    changed = flat(active, bool)
    keep = jnp.ones(e.shape, bool)
    if skip_never_updated:
        keep &= flat(nu) > 0
    if grads is not None:
        keep &= flat(_like_moments(_pure(grads), eta, jnp.abs)) > 0
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
    active = jnp.sum(keep & changed)
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


def _like_moments(grads: Any, like: Any, f: Any) -> Any:
    """``f(grads)`` restricted to the leaves of ``like`` (matched by tree path).

    ``grads`` is usually shaped like the params, while the moments may hold
    fewer leaves (``optax.masked`` puts ``MaskedNode`` where it does not act).
    """
    g = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(grads)}
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(like):
        key = jax.tree_util.keystr(path)
        if key not in g:
            raise ValueError(
                f"`grads` has no leaf at {key}, where the optimizer's moments have "
                "one; pass the gradients of the last step, shaped like the params."
            )
        if jnp.shape(g[key]) != jnp.shape(leaf):
            raise ValueError(
                f"`grads` leaf {key} has shape {jnp.shape(g[key])}, the moments "
                f"{jnp.shape(leaf)}."
            )
        out.append(f(g[key]))
    return out
