"""Shared helpers: hyperparameter validation, schedules, dtypes and tree maps.

Everything here is private. The core and the bounds (``_core.py``), and the
optimizer families (``_adamod.py``, ``_adabound.py``, ``_diffgrad.py``) are
built from these pieces so that every optimizer of the package validates,
schedules and casts in the same way.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Float dtypes too narrow to hold a decay rate such as 0.999: in bfloat16 it
# rounds to exactly 1.0, which freezes an exponential moving average that
# starts at zero.
_NARROW_FLOATS = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))

_INJECT_FIX = (
    "optax.inject_hyperparams casts hyperparameters to the params' dtype "
    "unless told otherwise; build it as "
    "optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)(...)"
)


_TRACER_ERRORS = (
    jax.errors.TracerArrayConversionError,
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
)


def is_traced(value: Any) -> bool:
    """True if ``value`` is a JAX tracer (its value is unknown at trace time).

    Asks through public API only (``jax.core.Tracer`` is outside JAX's
    compatibility policy): a traced array refuses conversion to NumPy with one
    of the ``jax.errors`` tracer errors. Only one element is converted, so a
    large concrete array costs nothing to test.
    """
    if not isinstance(value, jax.Array):
        return False
    try:
        np.asarray(value if value.ndim == 0 or value.size == 0
                   else value[(0,) * value.ndim])
    except _TRACER_ERRORS:
        return True
    return False


def concrete_float(value: Any) -> float | None:
    """The Python float behind ``value``, or None when it cannot be known.

    Schedules (callables) and traced arrays (for example hyperparameters fed
    by ``optax.inject_hyperparams`` inside ``jax.jit``) have no value at
    construction time and return None; they are not validated.
    """
    if value is None or callable(value) or is_traced(value):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        if np.ndim(value) != 0:
            raise ValueError(f"expected a scalar hyperparameter, got shape {np.shape(value)}")
        if not np.issubdtype(np.asarray(value).dtype, np.number):
            return None
        return float(np.asarray(value))
    return None


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete value is out of range.

    NaN is always rejected. Schedules and traced values are not checked (see
    :func:`concrete_float`).
    """
    v = concrete_float(value)
    if v is None:
        return
    ok = not np.isnan(v)
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        interval = ("[" if low_inclusive and low is not None else "(") + f"{lo}, {hi}"
        interval += "]" if high_inclusive and high is not None else ")"
        raise ValueError(f"`{name}` must be in {interval}, got {value!r}.")


def check_decay_rate(name: str, value: Any) -> None:
    """Validate an EMA decay rate: in [0, 1) and not stored in 16-bit floats."""
    check_range(name, value, low=0.0, high=1.0, high_inclusive=False)
    v = concrete_float(value)
    if v is not None and np.float32(v) == 1.0:
        # Moments are computed in (at least) float32, where such a rate is
        # exactly 1: 1 - b^t = 0 and the step is 0/0 (NaN) or frozen at 0.
        raise ValueError(
            f"`{name}` = {v!r} rounds to 1.0 in float32, the precision the "
            "optimizer state is computed in; use a value below 1 - 3e-8."
        )
    dtype = getattr(value, "dtype", None)
    if dtype is not None and jnp.dtype(dtype) in _NARROW_FLOATS:
        raise ValueError(
            f"`{name}` arrived as a {jnp.dtype(dtype).name} array; decay rates "
            f"such as 0.999 round to 1.0 in 16-bit floats and silently stop "
            f"training. {_INJECT_FIX}."
        )


def check_mask(mask: Any) -> None:
    """Catch a callable mask that ``inject_hyperparams`` evaluated as a schedule.

    ``inject_hyperparams`` calls a callable it was not told is static with the
    step count. A typical mask ``lambda p: jax.tree.map(lambda x: x.ndim > 1,
    p)`` then returns a single ``False`` (decay silently off) or ``True``
    (decay on everything), so a bare boolean is refused as well: it is never
    needed (``mask=None`` decays everything, ``weight_decay=0`` nothing).
    """
    if isinstance(mask, (bool, np.bool_)):
        raise ValueError(
            f"`mask` is a single boolean ({mask!r}); give a pytree of booleans "
            "like the params, or a callable params -> such a pytree. Under "
            "optax.inject_hyperparams a callable mask is called with the step "
            "count and collapses to one boolean unless you pass "
            "static_args=('mask',) to inject_hyperparams."
        )
    if isinstance(mask, (jax.Array, np.ndarray)) or is_traced(mask):
        raise ValueError(
            "`mask` arrived as an array, not as a pytree of booleans or a "
            "callable: optax.inject_hyperparams treats callables as schedules. "
            "Pass static_args=('mask',) to inject_hyperparams."
        )


def check_learning_rate(value: Any, name: str = "learning_rate") -> None:
    """A learning rate must be a non-negative float, array or schedule."""
    if not callable(value) and not is_traced(value) and not isinstance(
        value, (numbers.Real, np.ndarray, np.generic, jax.Array)
    ):
        raise TypeError(
            f"`{name}` must be a float, a scalar array or a schedule "
            f"(a callable count -> value), got {type(value).__name__}."
        )
    check_range(name, value, low=0.0)


def at_count(value: optax.ScalarOrSchedule, count: jax.Array) -> Any:
    """Evaluate a float-or-schedule at ``count`` (the 0-based update index)."""
    return value(count) if is_schedule(value) else value


def real_dtype(dtype: Any) -> jnp.dtype:
    """The real counterpart of ``dtype`` (float32 for complex64, etc.)."""
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.dtype(dtype)


def compute_dtype(*dtypes: Any) -> jnp.dtype:
    """The dtype arithmetic is done in: the widest input, at least 32 bits.

    Moments of float16/bfloat16 params are computed in float32 and cast back on
    storage, so ``(1 - b2) * g**2`` does not overflow float16 for |g| > 256.
    """
    dt = jnp.result_type(*dtypes)
    if jnp.issubdtype(dt, jnp.complexfloating):
        return jnp.promote_types(dt, jnp.complex64)
    if jnp.issubdtype(dt, jnp.floating):
        return jnp.promote_types(dt, jnp.float32)
    raise TypeError(
        f"adamod_optax optimizers need floating point params and gradients, got {dt}."
    )


def scalar(value: Any, dtype: Any) -> jax.Array:
    """A hyperparameter as a scalar of ``dtype`` (products then happen in it)."""
    return jnp.asarray(value).astype(dtype)


def ema_scalars(decay: Any, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """``(decay, 1 - decay)`` as scalars of ``dtype``'s real dtype."""
    d = scalar(decay, real_dtype(dtype))
    return d, 1 - d


def ema(
    decay: Any, old: jax.Array, new: jax.Array, dtype: Any,
    scalars: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array:
    """``decay * old + (1 - decay) * new`` computed in ``dtype``.

    ``scalars`` is ``ema_scalars(decay, dtype)`` when the caller shares them between leaves.
    """
    d, one_minus_d = ema_scalars(decay, dtype) if scalars is None else scalars
    return d * old.astype(dtype) + one_minus_d * new.astype(dtype)


def is_none(x: Any) -> bool:
    return x is None


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``jax.tree.map`` that leaves ``None`` leaves (and ``MaskedNode``) alone."""
    return jax.tree.map(
        lambda x, *r: None if x is None else f(x, *r), tree, *rest, is_leaf=is_none
    )


class _Pair:
    """Two results of one leaf; deliberately not a pytree, so it stays a leaf."""

    __slots__ = ("first", "second")

    def __init__(self, first: Any, second: Any):
        self.first, self.second = first, second


class Leaves:
    """Several results of one leaf; not a pytree, so it stays a leaf."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[Any, ...]):
        self.items = items


def tree_map2(f: Callable[..., tuple[Any, Any]], tree: Any, *rest: Any) -> tuple[Any, Any]:
    """Like :func:`tree_map` for an ``f`` returning two leaves: two trees back."""
    pairs = tree_map(lambda *xs: _Pair(*f(*xs)), tree, *rest)
    is_pair = lambda x: isinstance(x, _Pair)  # noqa: E731
    first = jax.tree.map(lambda p: p.first, pairs, is_leaf=is_pair)
    second = jax.tree.map(lambda p: p.second, pairs, is_leaf=is_pair)
    return first, second


def zeros_like(params: Any, dtype: Any = None, *, real: bool = False) -> Any:
    """Zeros shaped like ``params`` (a plain tree map, so shardings are kept).

    Args:
      params: the parameter tree.
      dtype: dtype of every leaf; ``None`` keeps each param's dtype.
      real: for a ``None`` dtype, use the real counterpart of complex params.
    """

    def make(p: jax.Array) -> jax.Array:
        dt = dtype
        if dt is None:
            dt = real_dtype(p.dtype) if real else p.dtype
        return jnp.zeros_like(p, dtype=dt)

    return tree_map(make, params)


def _path_str(path: Any) -> str:
    return jax.tree_util.keystr(path) if path else "<root>"


def check_updates(updates: Any, state_tree: Any, name: str) -> None:
    """Raise a clear error if ``updates`` cannot be paired with ``state_tree``.

    ``state_tree`` is a tree the transformation keeps per parameter (its first
    moment, its rate average, or the params themselves). Checked, leaf by leaf
    and naming the leaf's path: the same tree structure (``None`` leaves must
    sit at the same places), the same shapes, and floating point (or complex)
    update leaves. Only structure, shapes and dtypes are read, so the check
    runs once at trace time and costs nothing in a jitted step. ``None`` as
    ``state_tree`` (no params given) skips the check.

    Raises:
      ValueError: on a tree or shape mismatch.
      TypeError: on an integer or boolean update leaf.
    """
    if state_tree is None:
        return
    u_leaves, u_def = jax.tree_util.tree_flatten_with_path(updates, is_leaf=is_none)
    s_leaves, s_def = jax.tree_util.tree_flatten_with_path(state_tree, is_leaf=is_none)
    u_paths = [p for p, _ in u_leaves]
    s_paths = [p for p, _ in s_leaves]
    if u_paths != s_paths or u_def != s_def:
        u_set, s_set = set(map(_path_str, u_paths)), set(map(_path_str, s_paths))
        missing = sorted(s_set - u_set)
        extra = sorted(u_set - s_set)
        detail = []
        if missing:
            detail.append(f"missing from the updates: {', '.join(missing[:5])}")
        if extra:
            detail.append(f"not in the optimizer state: {', '.join(extra[:5])}")
        if not detail:
            detail.append(f"updates tree {u_def} vs state tree {s_def}")
        raise ValueError(
            f"{name}: the updates (gradients) tree does not match the tree the "
            f"optimizer was initialised with; {'; '.join(detail)}."
        )
    for (path, u), (_, s) in zip(u_leaves, s_leaves):
        where = _path_str(path)
        if (u is None) != (s is None):
            raise ValueError(
                f"{name}: leaf {where} is None in "
                f"{'the updates' if u is None else 'the optimizer state'} but not in "
                f"{'the optimizer state' if u is None else 'the updates'}."
            )
        if u is None:
            continue
        dtype = jnp.result_type(u)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{name}: update (gradient) leaf {where} has dtype {dtype}; "
                "adamod_optax optimizers need floating point or complex gradients."
            )
        if jnp.shape(u) != jnp.shape(s):
            raise ValueError(
                f"{name}: update (gradient) leaf {where} has shape {jnp.shape(u)} but "
                f"the optimizer state holds shape {jnp.shape(s)} there."
            )


B3_DEFAULT = 0.999


def resolve_b3(b3: Any, len_memory: Any) -> Any:
    """``b3``, or ``1 - 1/len_memory`` when ``len_memory`` is given.

    ``len_memory`` may only be combined with ``b3`` left at its default. Under
    ``optax.inject_hyperparams`` every default arrives as an array, so a
    concrete ``b3`` equal to the default counts as "left at its default" and a
    traced one cannot be checked (``len_memory`` wins).
    """
    if len_memory is None:
        return b3
    check_range("len_memory", len_memory, low=1.0)
    b3_value = concrete_float(b3)
    if b3_value is not None and b3_value != B3_DEFAULT and not (
        getattr(b3, "dtype", None) is not None
        and abs(b3_value - B3_DEFAULT) < 1e-6  # default cast to float32 by inject_hyperparams
    ):
        raise ValueError(
            "give either `b3` or `len_memory` (b3 = 1 - 1/len_memory), not both; "
            f"got b3={b3!r} and len_memory={len_memory!r}."
        )
    return 1.0 - 1.0 / len_memory


def check_weight_decay_mode(mode: Any) -> None:
    if mode not in ("coupled", "decoupled"):
        raise ValueError(
            f"`weight_decay_mode` must be 'coupled' (L2: g + wd * theta, as released) "
            f"or 'decoupled' (theta -= wd * lr_t * theta), got {mode!r}."
        )


def check_friction_version(version: Any, name: str = "version") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``version`` is 0, 1 or 2 (or traced)."""
    if is_traced(version):
        return
    value = None if isinstance(version, str) else concrete_float(version)
    if value is None or value not in (0.0, 1.0, 2.0):
        raise ValueError(f"`{name}` (the friction shape) must be 0, 1 or 2, got {version!r}.")


def check_eps_root(eps_root: Any) -> None:
    """``eps_root`` (added inside the square root, as in optax) must be >= 0."""
    check_range("eps_root", eps_root, low=0.0)


def check_nesterov(optimizer: str, nesterov: Any) -> None:
    """Refuse ``nesterov=True``, accepted by ``optax.adam``/``adamw`` but not here.

    ``nesterov=False`` (optax's default) is accepted so that a call written for
    ``optax.adamw`` keeps working; a traced value cannot be checked.
    """
    if is_traced(nesterov) or nesterov is None:
        return
    if bool(np.asarray(nesterov)):
        raise ValueError(
            f"{optimizer}() does not implement Nesterov momentum: `nesterov=True` "
            f"(an optax.adam/optax.adamw option) has no counterpart in "
            f"{optimizer}'s update rule. Remove it, or pass nesterov=False."
        )


def is_schedule(value: Any) -> bool:
    """True for a schedule (a callable ``count -> value``), False for a value.

    ``callable()`` alone is not enough: Flax NNX wraps optimizer-state arrays
    (for example hyperparameters injected by ``optax.inject_hyperparams``) in
    variables that define ``__call__``.
    """
    if not callable(value) or is_traced(value):
        return False
    if isinstance(value, (numbers.Number, np.ndarray, np.generic, jax.Array)):
        return False
    module = type(value).__module__ or ""
    return not module.startswith("flax.")
