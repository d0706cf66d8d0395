"""The building blocks: the Adam-style core, learning-rate bounds, weight decay.

The family of optimizers in this package differs only in what happens to
Adam's per-parameter learning rates ("rates") before they meet the momentum.
The core, :func:`scale_by_bounded_adam`, owns the moments and bias
corrections; it hands the rates to a *rate transformation*, an ordinary
``optax.GradientTransformation`` whose "updates" are learning rates, and
multiplies what comes back by the momentum. Bounds are rate transformations:

* :func:`scale_by_momental_bound` (AdaMod): ``min(eta_t, EMA_b3(eta)_t)``;
* :func:`clip_by_dynamic_bound` (AdaBound): ``clip(eta_t, lower_t, upper_t)``.

The package's bounds are :class:`RateBound` objects: optax transformations
that also carry their elementwise form, which the core's CPU fast path
(``fast_path``) needs. They chain with each other by :func:`chain_bounds`,
for example AdaBound's lower bound with AdaMod's upper bound::

    bound = chain_bounds(
        clip_by_dynamic_bound(1e-3, final_lr=0.1, upper=False),
        scale_by_momental_bound(b3=0.999),
    )
    tx = optax.chain(
        scale_by_bounded_adam(1e-3, rate_transform=bound),
        optax.scale(-1.0),
    )

``optax.chain`` of the same bounds gives the same updates and the same state
layout, but returns a plain transformation without the elementwise form, so
the core then runs its plain path (on XLA:CPU one array-sized temporary of
rates per leaf and step). Any optax transformation over rates works that way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple, Optional, Union

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
        :class:`ScaleByMomentalBoundState` holding the rate average), or
        ``None`` when the core has no ``rate_transform`` (DiffGrad): the rates
        are applied unbounded.
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

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: Optional[optax.Updates]
    rate_state: Optional[optax.OptState]
    rate_hyperparams: jax.Array


# The entries of ScaleByBoundedAdamState.rate_hyperparams, in order.
RATE_HYPERPARAMS = ("learning_rate", "b1", "b2", "eps", "eps_root", "explicit")


def _record_dtype() -> jnp.dtype:
    """The widest float JAX gives: every hyperparameter value fits exactly."""
    return jnp.dtype(jnp.result_type(float))


FastPath = Literal["auto", "recompute", "plain"]
_FAST_PATHS = ("auto", "recompute", "plain")

# One leaf of a bound's per-parameter state, or of the rates.
_BoundFn = Callable[..., tuple[jax.Array, tuple[jax.Array, ...]]]
_BoundFromNewFn = Callable[
    [jax.Array, tuple[jax.Array, ...], tuple[jax.Array, ...]], jax.Array
]


class BoundStep(NamedTuple):
    """One step of a :class:`RateBound`, split into elementwise pieces.

    ``RateBound.split(state, params, **extra_args)`` returns it; everything
    that is not per parameter (counters, schedules) is already evaluated in
    the closures, so the pieces below are elementwise and can be applied to a
    leaf or to any slice of a leaf.

    Attributes:
      arrays: the bound's per-parameter state at the start of the step, a
        tuple of trees shaped like the params (``()`` for a stateless bound).
      bound: ``bound(eta, *old) -> (bounded, new)`` for one leaf: the rates
        ``eta`` and the matching leaves ``old`` of ``arrays`` give the bounded
        rates (dtype of ``eta``) and the new state leaves (a tuple, dtypes of
        ``old``).
      bound_from_new: ``bound_from_new(eta, old, new) -> bounded``, the same
        bounded rates bit for bit, reading the new state leaves where that is
        exact. It may read ``old`` only where a new leaf is stored in a
        narrower dtype than it is computed in. ``old`` is ``None`` when
        :func:`adamod_optax.effective_learning_rates` asks, after the step,
        which rates the step applied (the old state is gone by then): read
        ``new`` as stored.
      finish: ``finish(new_arrays) -> state``, the bound's new state from the
        new per-parameter trees (a tuple like ``arrays``).
    """

    arrays: tuple[optax.Updates, ...]
    bound: _BoundFn
    bound_from_new: _BoundFromNewFn
    finish: Callable[[tuple[optax.Updates, ...]], optax.OptState]


SplitFn = Callable[..., BoundStep]


class _SplitUpdate:
    """The ``update`` of a :class:`RateBound`: applies its split leaf by leaf."""

    __slots__ = ("name", "split")

    def __init__(self, split: SplitFn, name: str):
        self.split, self.name = split, name

    def __call__(
        self,
        rates: optax.Updates,
        state: optax.OptState,
        params: Optional[optax.Params] = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, optax.OptState]:
        step = self.split(state, params, **extra_args)
        for tree in step.arrays:
            _base.check_updates(rates, tree, self.name)
        bounded, new_arrays = _map_bound(step.bound, rates, step.arrays)
        return bounded, step.finish(new_arrays)


class RateBound(optax.GradientTransformationExtraArgs):
    """A rate transformation that also describes itself elementwise.

    It is an ordinary ``optax.GradientTransformationExtraArgs`` (``init``,
    ``update``) whose inputs are learning rates, as every rate transformation
    of :func:`scale_by_bounded_adam`; in addition its :attr:`split` gives the
    step as elementwise pieces (a :class:`BoundStep`). The core's fast path
    (``fast_path="recompute"``) needs them: it recomputes the rates for the
    update instead of storing them, and bounds them with the *new* state.
    ``update`` is derived from ``split``, so the plain path and the fast path
    run the same elementwise code.

    The same pieces tell :func:`adamod_optax.effective_learning_rates` which
    rates a user-built bound applied (pass it as ``rate_transform=``).

    Build one with :func:`rate_bound`; chain several with :func:`chain_bounds`
    (``optax.chain`` works too but returns a plain transformation, which the
    core can only run on the plain path). ``RateBound(init, update)`` accepts
    only an ``update`` made by :func:`rate_bound` (it carries the ``split``).

    Raises:
      TypeError: at construction, when ``update`` carries no ``split``.
    """

    __slots__ = ()

    def __new__(cls, init: optax.TransformInitFn, update: Any) -> RateBound:
        if not callable(getattr(update, "split", None)):
            raise TypeError(
                "RateBound(init, update) needs an `update` made by rate_bound(init, "
                "split), which carries the bound's elementwise form (`split`); got "
                f"{type(update).__name__}. Build the bound with "
                "adamod_optax.rate_bound(init, split), or pass a plain optax "
                "transformation as `rate_transform` (it then runs on the plain path)."
            )
        return super().__new__(cls, init, update)

    @property
    def split(self) -> SplitFn:
        """``split(state, params=None, **extra_args) -> BoundStep``."""
        split = getattr(self.update, "split", None)
        if split is None:  # e.g. built by _replace(update=...), which skips __new__
            raise TypeError("this RateBound's `update` carries no `split`; build it with "
                            "adamod_optax.rate_bound(init, split).")
        return split


def rate_bound(
    init: optax.TransformInitFn, split: SplitFn, *, name: str = "rate_bound"
) -> RateBound:
    """A :class:`RateBound` from its ``init`` and its ``split``.

    Args:
      init: ``params -> state``, as any optax ``init``.
      split: ``(state, params=None, **extra_args) -> BoundStep``.
      name: used in error messages (a rates tree that does not match the
        state).

    Returns:
      A :class:`RateBound` whose ``update`` applies ``split``'s ``bound`` leaf
      by leaf (``None`` leaves and ``optax.MaskedNode`` are left alone).

    Example:
      >>> import jax.numpy as jnp
      >>> from adamod_optax import BoundStep, rate_bound
      >>> cap = rate_bound(  # a stateless bound: rates at most 0.5
      ...     lambda params: (),
      ...     lambda state, params=None, **kw: BoundStep(
      ...         arrays=(),
      ...         bound=lambda eta: (jnp.minimum(eta, 0.5), ()),
      ...         bound_from_new=lambda eta, old, new: jnp.minimum(eta, 0.5),
      ...         finish=lambda new: ()))
      >>> print(cap.update(jnp.array([0.1, 0.9]), cap.init(None))[0])
      [0.1 0.5]
    """
    return RateBound(init, _SplitUpdate(split, name))


def _map_bound(
    fn: _BoundFn, rates: optax.Updates, arrays: tuple[optax.Updates, ...]
) -> tuple[optax.Updates, tuple[optax.Updates, ...]]:
    """``fn`` leaf by leaf: the bounded rates and the tuple of new state trees."""
    def leaf(eta, *old):
        bounded, new = fn(eta, *old)
        return bounded, _base.Leaves(new)

    bounded, new = _base.tree_map2(leaf, rates, *arrays)
    is_leaves = lambda x: isinstance(x, _base.Leaves)  # noqa: E731
    new_arrays = tuple(
        jax.tree.map(lambda t, i=i: t.items[i], new, is_leaf=is_leaves)
        for i in range(len(arrays))
    )
    return bounded, new_arrays


def _identity_split(state, params=None, **extra_args):
    del state, params, extra_args
    return BoundStep(
        arrays=(),
        bound=lambda eta: (eta, ()),
        bound_from_new=lambda eta, old, new: eta,
        finish=lambda new: None,
    )


def identity_bound() -> RateBound:
    """No bound: the rates pass unchanged. Its state is ``None``, which tells the
    diagnostics (and readers of the state) that no bound was applied."""
    return rate_bound(lambda params: None, _identity_split, name="identity_bound")


def chain_bounds(*bounds: RateBound) -> RateBound:
    r"""Applies rate bounds one after another, keeping their elementwise form.

    The same as ``optax.chain(*bounds)`` (same updates, and the same state: a
    tuple of the bounds' states, so checkpoints are interchangeable), but the
    result is a :class:`RateBound`, so :func:`scale_by_bounded_adam` keeps its
    fast path. ``bounded = b_k(... b_2(b_1(eta)))``.

    Args:
      *bounds: :class:`RateBound` objects, for example
        :func:`scale_by_momental_bound` and :func:`clip_by_dynamic_bound`.

    Returns:
      A :class:`RateBound` with state ``tuple(b.init(params) for b in bounds)``.

    Raises:
      TypeError: if a bound is not a :class:`RateBound` (use ``optax.chain``
        for general transformations; the core then runs its plain path).
      ValueError: for no bounds at all (leave ``rate_transform=None``).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from adamod_optax import (chain_bounds, clip_by_dynamic_bound,
      ...     scale_by_bounded_adam, scale_by_momental_bound)
      >>> bound = chain_bounds(
      ...     clip_by_dynamic_bound(1e-3, final_lr=0.1, upper=False),
      ...     scale_by_momental_bound(b3=0.999))
      >>> tx = optax.chain(
      ...     scale_by_bounded_adam(1e-3, rate_transform=bound), optax.scale(-1.0))
      >>> state = tx.init({"w": jnp.zeros(3)})
    """
    if not bounds:
        raise ValueError("chain_bounds() needs at least one bound; for no bound, leave "
                         "scale_by_bounded_adam's `rate_transform` at None.")
    for b in bounds:
        if not isinstance(b, RateBound):
            raise TypeError(
                "chain_bounds takes RateBound objects (the package's bounds, or "
                f"rate_bound(...)); got {type(b).__name__}. Chain general "
                "transformations with optax.chain."
            )

    def init_fn(params):
        return tuple(b.init(params) for b in bounds)

    def split_fn(state, params=None, **extra_args):
        steps = [b.split(s, params, **extra_args) for b, s in zip(bounds, state)]
        sizes = [len(st.arrays) for st in steps]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]

        def parts(xs):
            return [tuple(xs[a:a + k]) for a, k in zip(starts, sizes)]

        def bound(eta, *old):
            new = []
            for st, o in zip(steps, parts(old)):
                eta, n = st.bound(eta, *o)
                new.extend(n)
            return eta, tuple(new)

        def bound_from_new(eta, old, new):
            olds = [None] * len(steps) if old is None else parts(old)
            for st, o, n in zip(steps, olds, parts(new)):
                eta = st.bound_from_new(eta, o, n)
            return eta

        def finish(new_arrays):
            return tuple(st.finish(n) for st, n in zip(steps, parts(new_arrays)))

        return BoundStep(
            arrays=tuple(a for st in steps for a in st.arrays),
            bound=bound,
            bound_from_new=bound_from_new,
            finish=finish,
        )

    return rate_bound(init_fn, split_fn, name="chain_bounds")


class RateScalars(NamedTuple):
    """The per-dtype scalars of one step's rates (see :func:`rate_scalars`)."""

    lr_t: jax.Array
    bc1: jax.Array  # 1 - b1^t
    bc2: jax.Array  # 1 - b2^t
    eps: jax.Array
    eps_root: Optional[jax.Array]  # None: nothing is added under the square root
    step_size: Optional[jax.Array]  # folded form: lr_t sqrt(bc2) / bc1; explicit: None


def rate_scalars(count_inc: Any, lr: Any, b1: Any, b2: Any, eps: Any, eps_root: Any,
                 rdt: Any, *, folded: bool, add_eps_root: bool) -> RateScalars:
    """The scalars of Adam's per-parameter rate at step ``t = count_inc``, in ``rdt``.

    Shared by the step (:func:`scale_by_bounded_adam`) and the diagnostics
    (:func:`adamod_optax.effective_learning_rates`), which call it with the
    values the step recorded, so both evaluate the same expressions.
    """
    t = jnp.asarray(count_inc).astype(rdt)
    lr_t = _base.scalar(lr, rdt)
    bc1 = 1 - _base.scalar(b1, rdt) ** t
    bc2 = 1 - _base.scalar(b2, rdt) ** t
    root = _base.scalar(eps_root, rdt) if add_eps_root else None
    step_size = lr_t * jnp.sqrt(bc2) / bc1 if folded else None
    return RateScalars(lr_t, bc1, bc2, _base.scalar(eps, rdt), root, step_size)


def adam_rate(v: jax.Array, sc: RateScalars, *, guard_zero: bool) -> jax.Array:
    """One leaf's rate ``eta_t`` from its second moment ``v_t`` (dtype of ``sc``).

    Folded (``sc.step_size`` set): ``step_size / (sqrt(v_t + eps_root) + eps)``;
    explicit: ``lr_t / (sqrt(v_t / bc2 + eps_root) + eps)``. ``guard_zero``
    replaces a zero denominator (``eps = 0`` and ``v = 0``: only zero, or
    underflowing, gradients so far) by 1, so the rate is finite and the update
    ``0 * rate`` is 0, not NaN; a no-op for ``eps > 0``.
    """
    v = v.astype(sc.bc2.dtype)
    if sc.step_size is None:
        v = v / sc.bc2
    if sc.eps_root is not None:
        v = v + sc.eps_root
    den = jnp.sqrt(v) + sc.eps
    if guard_zero:
        den = jnp.where(den == 0, 1, den)
    return (sc.lr_t if sc.step_size is None else sc.step_size) / den


def _resolve_fast_path(fast_path: FastPath, rate_tx: Any) -> str:
    """The path a step runs: "recompute" or "plain" ("auto" decided here)."""
    if fast_path == "auto":
        if not isinstance(rate_tx, RateBound):
            return "plain"
        # GPU/TPU compilers fuse the rates' two consumers into one kernel;
        # XLA:CPU does not (see scale_by_bounded_adam).
        return "recompute" if jax.default_backend() == "cpu" else "plain"
    return fast_path


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
    rate_transform: Optional[Union[RateBound, optax.GradientTransformation]] = None,
    bias_correction: BiasCorrection = "folded",
    amsgrad: bool = False,
    nu_dtype: Optional[Any] = None,
    fast_path: FastPath = "auto",
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

    **Fast path.** The rates have two consumers, the bound's new state and the
    update. XLA:CPU neither fuses them into one loop nor duplicates the
    rates' sqrt and divide into both, so it writes the rates to a fresh
    array-sized temporary every step (2-2.5x slower on large leaves, and
    one more array of memory). ``fast_path="recompute"`` computes the rates a
    second time for the update, from an ``optimization_barrier``-ed copy of
    ``v_t`` that CSE cannot merge with the first, and bounds them with the
    bound's *new* state (:attr:`BoundStep.bound_from_new`), so the update
    loop reads it instead of the donated old state. Both programs evaluate the
    same expressions (``fast_path="plain"`` is the straightforward form); on
    XLA:CPU they agree bit for bit except where one kernel adds two products
    (decoupled weight decay, a bfloat16 rate average), where LLVM may fuse a
    different product into a multiply-add: 1 ulp in a few elements per
    thousand. It needs the bound's elementwise form, so
    ``rate_transform`` must be a :class:`RateBound` (the package's bounds,
    :func:`chain_bounds` of them, or ``None``). ``"auto"`` takes
    ``"recompute"`` on the CPU backend for a :class:`RateBound` and
    ``"plain"`` otherwise (GPU compilers fuse both consumers into one kernel;
    a general transformation, such as an ``optax.chain`` of bounds, has no
    elementwise form). The choice is made when the update is traced.

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
        :func:`scale_by_momental_bound`, :func:`clip_by_dynamic_bound`, their
        :func:`chain_bounds`, or any optax transformation (plain path only).
      bias_correction: ``"folded"`` or ``"explicit"``, see above.
      amsgrad: keep the running maximum of ``v_t`` and use it for the rates.
      nu_dtype: storage dtype of ``v_t`` (default: the param's real dtype).
      fast_path: ``"auto"``, ``"recompute"`` or ``"plain"``, see above. Speed
        and memory only: the same expressions, equal to 1 ulp.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`ScaleByBoundedAdamState`.

    Raises:
      ValueError: for an unknown ``fast_path``, or ``"recompute"`` with a
        ``rate_transform`` that is not a :class:`RateBound`.

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
    if fast_path not in _FAST_PATHS:
        raise ValueError(f"`fast_path` must be one of {_FAST_PATHS}, got {fast_path!r}.")
    if rate_transform is None:
        rate_transform = identity_bound()
    if fast_path == "recompute" and not isinstance(rate_transform, RateBound):
        raise ValueError(
            "fast_path='recompute' needs a RateBound as `rate_transform` (the "
            "package's bounds, chain_bounds(...) of them, or None); got a "
            f"{type(rate_transform).__name__}, which only runs on the plain path. "
            "Chain bounds with adamod_optax.chain_bounds instead of optax.chain."
        )
    eps_value = _base.concrete_float(eps)
    eps_positive = eps_value is not None and eps_value > 0
    add_eps_root = _base.concrete_float(eps_root) != 0.0  # traced: always added
    rate_tx = optax.with_extra_args_support(rate_transform)

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

        # Per-dtype scalars (decays, bias corrections, step size) are traced once
        # per step and shared by every leaf of that dtype, not once per leaf:
        # the same program after XLA's CSE, less tracing (compile time).
        scalars: dict[Any, Any] = {}

        def once(key, make):
            if key not in scalars:
                scalars[key] = make()
            return scalars[key]

        def ema(decay, old, new, dtype):
            # _base.ema with its scalars shared between the leaves of one dtype.
            shared = once(("ema", id(decay), jnp.dtype(dtype)),
                          lambda: _base.ema_scalars(decay, dtype))
            return _base.ema(decay, old, new, dtype, scalars=shared)

        def leaf_dtype(g, m, v):
            return _base.compute_dtype(g.dtype, m.dtype, v.dtype)

        mu = _base.tree_map(
            lambda g, m, v: ema(b1, m, g, leaf_dtype(g, m, v)).astype(m.dtype),
            updates, state.mu, state.nu,
        )
        nu = _base.tree_map(
            lambda g, m, v: ema(
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

        folded = bias_correction == "folded"

        def scalars_of(rdt):
            return rate_scalars(count_inc, lr, b1, b2, eps, eps_root, rdt, folded=folded,
                                add_eps_root=add_eps_root)

        def rate_and_direction(g, m, v):
            dt = leaf_dtype(g, m, v)
            rdt = _base.real_dtype(dt)
            # Explicit form: per leaf, as before: shared, XLA computes 1 - b^t outside
            # the leaves' kernels instead of inside them, which changes bits of
            # m / bc1 and v / bc2 (benchmarks.bit_identity).
            sc = once(("rate", rdt), lambda: scalars_of(rdt)) if folded else scalars_of(rdt)
            eta = adam_rate(v, sc, guard_zero=not eps_positive)
            return eta, (m.astype(dt) if folded else m.astype(dt) / sc.bc1)

        rates, directions = _base.tree_map2(rate_and_direction, updates, mu, nu_for_rate)
        # The core owns the step count and passes it to the rate transformation.
        rate_args = {**extra_args, "count": state.count}
        path = _resolve_fast_path(fast_path, rate_transform)
        step = None
        if path != "plain":
            step = rate_transform.split(state.rate_state, params, **rate_args)
        if step is None or not step.arrays:
            # A bound without per-parameter state: the rates have one consumer
            # (the update) and there is nothing to recompute.
            bounded, rate_state = rate_tx.update(rates, state.rate_state, params, **rate_args)
        else:
            # Speed only, the same expressions (see "Fast path" above): the rates
            # feed the bound's new state here; the update gets a second copy
            # computed from a barrier'd v, bounded with the *new* state.
            _, new_arrays = _map_bound(step.bound, rates, step.arrays)
            rate_state = step.finish(new_arrays)
            nu_b = jax.tree.map(jax.lax.optimization_barrier, nu_for_rate)
            rates_b, _ = _base.tree_map2(rate_and_direction, updates, mu, nu_b)
            bounded = _base.tree_map(
                lambda eta, *arrays: step.bound_from_new(
                    eta, arrays[: len(new_arrays)], arrays[len(new_arrays):]
                ),
                rates_b, *step.arrays, *new_arrays,
            )
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

    count: jax.Array


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
