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

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adamod_optax import _adabound, _adamod, _base, _core
from adamod_optax._adabound import ClipByDynamicBoundState
from adamod_optax._adamod import ScaleByMomentalBoundState
from adamod_optax._core import RATE_HYPERPARAMS, RateBound, ScaleByBoundedAdamState

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
_HYPER_NAMES = ("learning_rate", "b1", "b2", "eps", "eps_root")

# The package's bounds whose state records what they applied, and the piece of
# each bound's own code that applies it (shared with the step).
_APPLIED = {
    ScaleByMomentalBoundState: _adamod.applied_momental,
    ClipByDynamicBoundState: _adabound.applied_clip,
}


def _is_flax_variable(x: Any) -> bool:
    """An NNX variable (``OptArray``, ``OptVariable``) or, on Flax 0.10, a ``VariableState``."""
    return (_is_flax(x) and not isinstance(x, Mapping)
            and (hasattr(type(x), "get_value") or hasattr(x, "value")))


def _flax_value(x: Any) -> Any:
    return x.get_value() if hasattr(type(x), "get_value") else x.value


def _is_flax(x: Any) -> bool:
    return (type(x).__module__ or "").startswith("flax.")


_NNX_HINT = (
    "nnx.state(optimizer) keeps the arrays but not the optax state's types; pass the "
    "nnx.Optimizer itself or its `opt_state` (after restoring a checkpoint: "
    "nnx.update(optimizer, restored_state) first)."
)


def _from_nnx_state(tree: Any) -> Any:
    """An ``nnx.State`` of an optimizer, its optax state types rebuilt from field names.

    ``nnx.state(optimizer)`` turns the optax NamedTuples into dicts and drops
    ``None`` and empty nodes. This package's states and optax's Adam and
    ``inject_hyperparams`` states are recognised by their fields; a core without
    its ``rate_state`` entry is refused, because a bound with no per-parameter
    state and no bound at all look the same there.
    """
    def plain(node):
        if _is_flax_variable(node):
            return _flax_value(node)
        if isinstance(node, Mapping):
            return {k: plain(v) for k, v in node.items()}
        return node

    pure = plain(tree)
    if isinstance(pure, dict) and "opt_state" in pure:
        pure = pure["opt_state"]

    def rate_state(node):
        if isinstance(node, dict) and node and all(isinstance(k, int) for k in node):
            return tuple(rate_state(node[k]) for k in sorted(node))
        for cls in _APPLIED:
            if isinstance(node, dict) and set(node) == set(cls._fields):
                return cls(**node)
        raise ValueError("the rate bound's state in this nnx.State is not one of this "
                         "package's bounds. " + _NNX_HINT)

    def rebuild(node):
        if not isinstance(node, dict):
            return node
        keys = set(node)
        core = set(ScaleByBoundedAdamState._fields) - {"nu_max", "rate_state"}
        if core <= keys:
            if "rate_state" not in keys:
                raise ValueError("this nnx.State holds a core without its rate_state (no "
                                 "bound, or a bound without per-parameter state: they cannot "
                                 "be told apart here). " + _NNX_HINT)
            return ScaleByBoundedAdamState(
                count=node["count"], mu=node["mu"], nu=node["nu"],
                nu_max=node.get("nu_max"), rate_state=rate_state(node["rate_state"]),
                rate_hyperparams=node["rate_hyperparams"])
        if keys == set(optax.ScaleByAdamState._fields):
            return optax.ScaleByAdamState(**node)
        if _INJECT_TYPES and keys == set(_INJECT_TYPES[0]._fields):
            return _INJECT_TYPES[0](count=node["count"], hyperparams=node["hyperparams"],
                                    inner_state=rebuild(node["inner_state"]))
        return {k: rebuild(v) for k, v in node.items()}

    return rebuild(pure)


def _pure(opt_state: Any) -> Any:
    """``opt_state`` with Flax NNX variables (``OptArray``) replaced by their arrays.

    Also accepts an ``nnx.Optimizer`` (its ``opt_state`` is read) and
    ``nnx.state(optimizer)`` (see :func:`_from_nnx_state`). Works on concrete
    and traced values (inside ``nnx.jit``).
    """
    if isinstance(opt_state, Mapping):  # nnx.state(optimizer), or a dict holding states
        return _from_nnx_state(opt_state)
    if _is_flax(opt_state) and hasattr(opt_state, "opt_state"):  # nnx.Optimizer
        opt_state = opt_state.opt_state
    return jax.tree_util.tree_map(
        lambda x: _flax_value(x) if _is_flax_variable(x) else x, opt_state,
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


_ROUNDING_ULPS = 4


def _core_eta(state: ScaleByBoundedAdamState) -> Any:
    """``eta_t`` of the last update, by the step's own code (:func:`_core.rate_scalars`,
    :func:`_core.adam_rate`) from the hyperparameters the step recorded."""
    record = dict(zip(RATE_HYPERPARAMS, list(state.rate_hyperparams)))
    nu = state.nu if state.nu_max is None else state.nu_max

    def rate(m, v):
        rdt = _compute_dtype(m, v)
        hyper = [record[k] for k in _HYPER_NAMES]

        def form(folded):
            # eps_root always added (adding a recorded 0 changes nothing); the zero
            # guard always on (a no-op where eps > 0, as in the step).
            sc = _core.rate_scalars(state.count, *hyper, rdt, folded=folded,
                                    add_eps_root=True)
            return _core.adam_rate(v, sc, guard_zero=True)

        return jnp.where(record["explicit"] > 0, form(False), form(True))

    return _base.tree_map(rate, state.mu, nu)


def _describe(rate_state: Any) -> list:
    """The package's bound states in ``rate_state``, in the order they were applied
    (one such state, or a tuple of them from ``chain_bounds``/``optax.chain``).

    Raises:
      ValueError: when ``rate_state`` holds anything else: the state of a bound
        built with ``rate_bound`` (even an empty one), or of a plain optax
        transformation over the rates, neither of which says what it applied.
    """
    found: list = []

    def walk(node) -> bool:
        if isinstance(node, tuple(_APPLIED)):
            found.append(node)
            return True
        if type(node) in (tuple, list):  # chain_bounds / optax.chain (not NamedTuples)
            return len(node) > 0 and all([walk(x) for x in node])
        return False

    if not walk(rate_state):
        raise ValueError(
            "the rates of this optimizer went through a rate transformation whose state "
            f"({type(rate_state).__name__}) does not say what it applied: a bound built "
            "with rate_bound(...), or a plain optax transformation. Pass the bound as "
            "`rate_transform=` (the RateBound given to scale_by_bounded_adam, which "
            "describes itself through its `split`); a plain optax transformation over "
            "rates cannot describe itself, so its bounded rates cannot be reported."
        )
    return found


def _core_rates(state: ScaleByBoundedAdamState, rate_transform: Optional[Any]
                ) -> tuple[Any, Any, Any]:
    """(eta, bounded, active) of this package's core, by the code the step ran.

    ``eta`` comes from the core's rate code; ``bounded`` from each bound's own
    elementwise piece: the package's bounds read what their state recorded, a
    ``rate_transform`` given by the caller is asked through its ``split``.
    ``active`` is where the bound changed the rate by more than rounding
    (``_ROUNDING_ULPS`` ulps of the leaf's dtype, or of a bound state's
    storage dtype).
    """
    eta = _core_eta(state)
    ulp = _base.tree_map(lambda e: jnp.asarray(jnp.finfo(e.dtype).eps, e.dtype), eta)
    if rate_transform is not None:
        if not isinstance(rate_transform, RateBound):
            raise TypeError(
                "`rate_transform` must be the RateBound the optimizer was built with "
                "(rate_bound(...), chain_bounds(...) or one of this package's bounds); got "
                f"{type(rate_transform).__name__}, which cannot describe what it applied."
            )
        count = jnp.maximum(jnp.asarray(state.count) - 1, 0)  # the last update's index
        step = rate_transform.split(state.rate_state, None, count=count)
        bounded = _base.tree_map(
            lambda e, *new: step.bound_from_new(e, None, tuple(new)), eta, *step.arrays)
        for tree in step.arrays:
            ulp = _base.tree_map(
                lambda u, a: jnp.maximum(u, jnp.finfo(a.dtype).eps).astype(u.dtype)
                if jnp.issubdtype(a.dtype, jnp.floating) else u, ulp, tree)
    elif state.rate_state is None:
        bounded = eta
    else:
        bounded = eta
        for b in _describe(state.rate_state):
            bounded = _APPLIED[type(b)](b, bounded)
            if isinstance(b, ScaleByMomentalBoundState):
                # s_t stored narrower than it was computed (bfloat16): its rounding
                ulp = _base.tree_map(
                    lambda u, s: jnp.maximum(u, jnp.finfo(s.dtype).eps).astype(u.dtype),
                    ulp, b.rate_avg)
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


def _rates(opt_state, learning_rate, hyperparams, rate_transform=None):
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
        return _core_rates(state, rate_transform)
    if rate_transform is not None:
        raise ValueError("`rate_transform` is for this package's optimizer states; "
                         "optax.adam/adamw apply no rate bound.")
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
    rate_transform: Optional[RateBound] = None,
    b2: Optional[float] = None,
    eps: Optional[float] = None,
    eps_root: Optional[float] = None,
) -> tuple[optax.Updates, optax.Updates]:
    """Per-parameter rates ``(eta, bounded)`` recomputed from an optimizer state.

    Args:
      opt_state: the state of an optimizer of this package, of
        ``optax.adam``/``adamw``, or of any chain or wrapper holding one
        (``optax.chain``, ``inject_hyperparams``, ``MultiSteps``, ``masked``);
        a Flax ``nnx.Optimizer``, its ``opt_state`` (inside ``nnx.jit`` too)
        or ``nnx.state(optimizer)`` also works. See :func:`find_adam_state`.
      learning_rate: only for an ``optax.ScaleByAdamState``: the float or
        schedule given to the optimizer (a schedule is evaluated at
        ``count - 1``, the last update's index). ``None`` reads it from an
        ``optax.inject_hyperparams`` state.
      b2, eps, eps_root: only for an ``optax.ScaleByAdamState``, as for
        ``learning_rate``; ``eps_root`` defaults to 0 (optax.adam's default),
        the others are required unless ``inject_hyperparams`` holds them.
        (Adam's rate ``lr_t / (sqrt(v_hat_t + eps_root) + eps)`` has no ``b1``.)
      rate_transform: only for a core built with a bound of your own
        (:func:`~adamod_optax.rate_bound`, or :func:`~adamod_optax.chain_bounds`
        including one): pass that :class:`~adamod_optax.RateBound`. Its
        ``split`` is evaluated at the last update's count and its
        ``bound_from_new(eta, None, new)`` gives the rates the step applied.
        This package's bounds need nothing: their state records what they
        applied.

    Returns:
      ``(eta, bounded)``: trees like the moments, float32 or wider. ``eta`` is
      computed by the step's own rate code from the hyperparameters the step
      recorded; ``bounded`` is what the step applied after its rate bounds,
      computed by each bound's own elementwise code (``eta`` itself without a
      bound, and for Adam). Exact where the bounds' state is stored in the
      dtype it is computed in; a ``bfloat16`` rate average gives the rates
      within its rounding, and AdaBound's recorded bounds (float64 with
      ``jax_enable_x64``) may differ from the step's float32 ones by an ulp.

    Raises:
      ValueError: for a state of this package given any hyperparameter (it
        records them itself), for an ``optax.ScaleByAdamState`` missing one
        (the message names what to pass), for no or several Adam-style states
        in ``opt_state``, and for a core whose rate transformation does not say
        what it applied (a bound of your own: pass ``rate_transform``; a plain
        optax transformation over rates: not supported), never unbounded rates
        reported as bounded.
      TypeError: for a ``rate_transform`` that is not a ``RateBound``.

    Example:
      A bound of your own (the cap of :func:`~adamod_optax.rate_bound`'s
      example) is reported as applied when passed as ``rate_transform``:

      >>> import jax.numpy as jnp, optax
      >>> import adamod_optax as ao
      >>> cap = ao.rate_bound(lambda params: (), lambda state, params=None, **kw:
      ...     ao.BoundStep(arrays=(), bound=lambda eta: (jnp.minimum(eta, 0.5), ()),
      ...                  bound_from_new=lambda eta, old, new: jnp.minimum(eta, 0.5),
      ...                  finish=lambda new: ()))
      >>> tx = optax.chain(ao.scale_by_bounded_adam(1.0, rate_transform=cap),
      ...                  optax.scale(-1.0))
      >>> params = {"w": jnp.array([1.0, 1.0])}
      >>> state = tx.init(params)
      >>> _, state = tx.update({"w": jnp.array([1e-3, 1.0])}, state, params)
      >>> eta, bounded = ao.effective_learning_rates(state, rate_transform=cap)
      >>> print(eta["w"].round(1), bounded["w"])  # Adam's first rates ~ 10 / |g|
      [9996.8   10. ] [0.5 0.5]
    """
    eta, bounded, _ = _rates(opt_state, learning_rate, dict(b2=b2, eps=eps, eps_root=eps_root),
                             rate_transform)
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
    rate_transform: Optional[RateBound] = None,
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
      rate_transform: a bound of your own, see :func:`effective_learning_rates`.
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
    eta, bounded, active = _rates(opt_state, learning_rate, hyperparams, rate_transform)

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
