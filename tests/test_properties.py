"""Property-based tests (hypothesis) for every optimizer in ``benchmarks.accuracy.FAMILY``.

Random pytrees (scalars, empty arrays, mixed shapes, nested dicts/tuples,
``None`` leaves), per-leaf dtypes (float16, bfloat16, float32, float64),
hyperparameters across their valid ranges and gradient scales from 0 through
tiny and subnormal to very large finite values. Invariants checked:

* updates and state stay finite (domain: ``(1 - b2) |g|^2`` representable in
  the second moment's storage dtype, see docs/guides/robustness.md);
* update dtype == param dtype, state dtypes and shapes never change;
* jitted == eager (to a few ulps);
* the momental bound never exceeds the current rate nor its average;
* ``b3 = 0`` is Adam (released form: folded bias correction; paper form:
  ``optax.adam``);
* a decay rate that rounds to 1.0 in float32 is refused at construction.

The strategies generate valid inputs only (no example passes by returning
early). Profiles are registered in conftest.py: "ci" (the default: a fixed,
derandomized set of examples sized to about a minute for this file on 2 cores)
and "dev" (``HYPOTHESIS_PROFILE=dev``, a larger random search).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import adamod_optax as ao  # noqa: E402
from adamod_optax import ScaleByMomentalBoundState  # noqa: E402
from benchmarks.accuracy import FAMILY  # noqa: E402

NAMES = sorted(FAMILY)
DTYPES = [jnp.float16, jnp.bfloat16, jnp.float32]
if jax.config.jax_enable_x64:  # with x64 off (users' default) there are no float64 arrays
    DTYPES.append(jnp.float64)
SHAPES = [(), (0,), (1,), (3,), (2, 3), (0, 2)]
SCALES = ["zero", "tiny", "subnormal", "one", "large"]


def accepted_kwargs(name: str) -> set[str]:
    """Keyword arguments the optimizer's public function takes."""
    fn = getattr(FAMILY[name], "fn", ao.adamod)
    return set(inspect.signature(fn).parameters)


def build(name: str, **hp):
    keys = accepted_kwargs(name)
    return FAMILY[name](**{k: v for k, v in hp.items() if k in keys})


# ----------------------------------------------------------------- strategies
def _decay():
    # The whole valid range [0, 1) as float32 sees it: the optimizers compute in (at least)
    # float32 and refuse a rate that rounds to 1.0 there (tested separately below).
    return st.one_of(
        st.just(0.0),
        st.floats(0.0, 1.0, exclude_max=True).filter(lambda b: np.float32(b) < 1.0),
        st.sampled_from([0.9, 0.99, 0.999, 0.9999, 1 - 2.0**-24]),  # the last: largest valid
    )


# Every float in [1 - 2**-25, 1) rounds to 1.0 in float32 (round half to even).
ROUNDS_TO_ONE = st.floats(1 - 2.0**-25, 1.0, exclude_max=True)


hyperparams = st.fixed_dictionaries({
    "learning_rate": st.one_of(st.just(0.0), st.floats(1e-6, 1.0)),
    "b1": _decay(),
    "b2": _decay(),
    "b3": _decay(),
    "eps": st.one_of(st.just(0.0), st.floats(1e-30, 1e-2), st.just(1e-8)),
    "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
})

class Spec:
    """A leaf description (shape, dtype); not a pytree, so it stays a leaf."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __repr__(self):
        return f"Spec({self.shape}, {jnp.dtype(self.dtype).name})"


_leaf = st.one_of(
    st.none(), st.builds(Spec, st.sampled_from(SHAPES), st.sampled_from(DTYPES))
)
def _is_spec(x):
    return x is None or isinstance(x, Spec)


def _has_elements(tree) -> bool:
    """At least one leaf is an array with elements (else every check would be vacuous)."""
    return any(
        isinstance(s, Spec) and int(np.prod(s.shape)) > 0
        for s in jax.tree.leaves(tree, is_leaf=_is_spec)
    )


trees = st.recursive(
    _leaf,
    lambda kids: st.one_of(
        st.dictionaries(st.sampled_from("abcd"), kids, min_size=1, max_size=3),
        st.lists(kids, min_size=1, max_size=3).map(tuple),
    ),
    max_leaves=6,
).map(lambda t: {"root": t}).filter(_has_elements)


def scale_value(kind: str, dtype, state_dtype=None) -> float:
    """A gradient magnitude of ``kind`` for ``dtype``.

    "large" is the largest scale inside the finite domain for every b2: the second
    moment (stored in ``state_dtype``, by default the param's dtype) must hold
    ``g^2``: ``g^2 <= finfo.max / 16`` of the narrower of the two dtypes.
    """
    fi = jnp.finfo(dtype)
    big = fi if state_dtype is None else min(fi, jnp.finfo(state_dtype), key=lambda f: f.max)
    return {
        "zero": 0.0,
        "tiny": max(1e-30, float(fi.tiny)),  # 1e-30, or the smallest normal
        "subnormal": float(fi.smallest_subnormal),
        "one": 1.0,
        "large": float(np.sqrt(float(big.max)) / 4),
    }[kind]


def make_tree(spec, seed: int, scale: str | None = None, scales=None, state_dtype=None):
    """Arrays for a tree of (shape, dtype) specs; gradients get a scale per leaf (inside the
    finite domain of a second moment stored in ``state_dtype``, see :func:`scale_value`)."""
    rng = np.random.default_rng(seed)
    specs = jax.tree.leaves(spec, is_leaf=_is_spec)
    kinds = iter(scales or [scale] * len(specs))

    def make(s):
        if s is None:
            return None
        shape, dtype = s.shape, s.dtype
        x = rng.uniform(0.5, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        if scale is not None or scales is not None:
            x = x * scale_value(next(kinds), dtype, state_dtype)
        return jnp.asarray(x, dtype=dtype)

    return jax.tree.map(make, spec, is_leaf=_is_spec)


def arrays(tree):
    return [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype")]


def nonfinite(tree) -> list[tuple[str, np.ndarray]]:
    """(path, values in float64) of the float leaves of ``tree`` that hold a NaN or an Inf.

    Checked in NumPy (float64 holds every float16/bfloat16/float32 value): no JAX op to
    compile for each new shape and dtype, which would dominate the time of an example.
    """
    out = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(x.dtype, jnp.inexact):
            values = np.asarray(x, np.float64)
            if not np.all(np.isfinite(values)):
                out.append((jax.tree_util.keystr(path), values))
    return out


def shapes_dtypes(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def nudged(tree):
    """Every float leaf times (1 + 2 eps) of its dtype: a change of an ulp or two."""
    def nudge(x):
        if x is None or not jnp.issubdtype(x.dtype, jnp.inexact):
            return x
        eps = float(jnp.finfo(x.dtype).eps)
        return jnp.asarray(np.asarray(x, np.float64) * (1 + 2 * eps), x.dtype)

    return jax.tree.map(nudge, tree)


def assert_close_ulps(a, b, nudged_b, ulps=8):
    """``a`` equals ``b`` to ``ulps`` ulps of each leaf's scale, plus ``ulps`` times how far
    ``b`` moved when its inputs were nudged by an ulp or two (``nudged_b``): jit and eager
    round differently (XLA contracts a*b + c into one FMA under jit), and where the step
    cancels (for example g + wd*p, or b1*m + (1 - b1)*g, near 0) that rounding is amplified
    exactly as a nudge of the inputs is."""
    for x, y, z in zip(arrays(a), arrays(b), arrays(nudged_b)):
        assert x.dtype == y.dtype
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            np.testing.assert_array_equal(x, y)
            continue
        x64, y64, z64 = (np.asarray(v, np.float64) for v in (x, y, z))
        eps = float(jnp.finfo(x.dtype).eps)
        finite = np.isfinite(y64)
        np.testing.assert_array_equal(x64[~finite], y64[~finite])  # the same inf or NaN
        scale = max(float(np.max(np.abs(y64[finite]), initial=0.0)),
                    float(jnp.finfo(x.dtype).tiny))
        tol = ulps * eps * (scale + np.abs(y64)) + ulps * np.abs(y64 - z64)
        tol = np.where(np.isfinite(z64), tol, np.inf)
        bad = finite & ~(np.abs(x64 - y64) <= tol)
        assert not np.any(bad), (x64[bad], y64[bad], z64[bad])


# ------------------------------------------------------------------ invariants
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@given(
    hp=hyperparams, spec=trees, seed=st.integers(0, 2**16),
    scales=st.lists(st.sampled_from(SCALES), min_size=6, max_size=6),
)
def test_finite_dtypes_and_jit(name, hp, spec, seed, scales):
    """Finite updates and state; dtypes kept; jit == eager; 3 steps."""
    tx = build(name, **hp)
    params = make_tree(spec, seed)
    state0 = tx.init(params)
    layout = shapes_dtypes(state0)
    eager_state, jit_state, nudged_state = state0, state0, state0
    jit_update = jax.jit(tx.update)
    for step in range(3):
        grads = make_tree(spec, seed + 1 + step, scales=scales)
        u, eager_state = tx.update(grads, eager_state, params)
        uj, jit_state = jit_update(grads, jit_state, params)
        un, nudged_state = tx.update(nudged(grads), nudged_state, nudged(params))
        assert not nonfinite(u), (step, u)
        assert not nonfinite(eager_state), (step, nonfinite(eager_state))
        assert jax.tree.structure(u) == jax.tree.structure(params)
        for p, x in zip(arrays(params), arrays(u)):
            assert x.dtype == p.dtype and x.shape == p.shape
        assert shapes_dtypes(eager_state) == layout
        assert shapes_dtypes(jit_state) == layout
        assert_close_ulps(uj, u, un)
        assert_close_ulps(jit_state, eager_state, nudged_state)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), rate=ROUNDS_TO_ONE)
def test_decay_rate_rounding_to_one_is_refused(name, data, rate):
    """A decay rate in [0, 1) that is 1.0 in float32 is refused at construction."""
    rates = [b for b in ("b1", "b2", "b3") if b in accepted_kwargs(name)]  # b3: AdaMod forms
    which = data.draw(st.sampled_from(rates), label="which")
    assert np.float32(rate) == 1.0
    with pytest.raises(ValueError, match=rf"`{which}` = .* rounds to 1\.0 in float32"):
        build(name, **{which: rate})


def _record():
    """A rate transformation that stores the rates it sees (identity)."""
    return optax.GradientTransformation(
        lambda p: jax.tree.map(jnp.zeros_like, p), lambda r, s, p=None: (r, r)
    )


@pytest.mark.slow
@pytest.mark.parametrize("bias_correction", ["folded", "explicit"])
@given(
    hp=hyperparams,
    dtype=st.sampled_from(DTYPES),
    state_f32=st.booleans(),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from(SCALES),
)
def test_bound_never_exceeds_rate_or_average(bias_correction, hp, dtype, state_f32, seed, scale):
    """min(eta_t, s_t) <= eta_t and <= s_t, through the core, for 4 steps."""
    sdt = jnp.float32 if state_f32 else None
    tx = ao.scale_by_bounded_adam(
        hp["learning_rate"], hp["b1"], hp["b2"], hp["eps"],
        rate_transform=optax.chain(
            _record(), ao.scale_by_momental_bound(hp["b3"], dtype=sdt), _record()
        ),
        bias_correction=bias_correction, mu_dtype=sdt, nu_dtype=sdt,
    )
    spec = {"w": Spec((5,), dtype), "s": Spec((), dtype)}
    params = make_tree(spec, seed)
    state = tx.init(params)
    for step in range(4):
        grads = make_tree(spec, seed + step + 1, scale=scale, state_dtype=sdt)
        _, state = jax.jit(tx.update)(grads, state, params)
        eta, bound_state, bounded = state.rate_state
        assert isinstance(bound_state, ScaleByMomentalBoundState)
        for e, s, b in zip(arrays(eta), arrays(bound_state.rate_avg), arrays(bounded)):
            e, s, b = np.asarray(e), np.asarray(s), np.asarray(b)  # no JAX op per check
            assert np.all(b <= e), (step, e, b)
            # s_t is bounded in compute precision, then stored rounded to its
            # dtype (float16 by default for float16 params), saturating at the
            # dtype's largest finite value; both are monotone, so the stored
            # bound still caps the rate stored the same way.
            top = float(jnp.finfo(s.dtype).max)  # np.finfo knows no bfloat16 on NumPy 1.24
            assert np.all(np.minimum(b, top).astype(s.dtype) <= s), (step, s, b)
            assert np.all(b >= 0)
        assert not nonfinite(bound_state), (step, bound_state)


def _adam_folded(params, grads_seq, lr, b1, b2, eps):
    """NumPy float64 Adam with the folded bias correction (legacy torch form)."""
    p = np.asarray(params, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads_seq, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        p = p - step * m / (np.sqrt(v) + eps)
    return p


@given(
    lr=st.floats(1e-5, 1.0),
    b1=st.floats(0.0, 0.999),
    b2=st.floats(0.0, 0.9999),
    eps=st.one_of(st.just(0.0), st.floats(1e-12, 1e-3)),
    seed=st.integers(0, 2**16),
)
def test_b3_zero_is_adam(lr, b1, b2, eps, seed):
    """b3 = 0: released form == folded Adam; paper form == optax.adam (float64, or float32
    tolerances with x64 off)."""
    rng = np.random.default_rng(seed)
    p0 = rng.normal(size=4)
    grads = [rng.normal(size=4) * 10.0 ** rng.uniform(-3, 3) for _ in range(6)]

    def run(tx):
        p = jnp.asarray(p0)
        state = tx.init(p)
        for g in grads:
            u, state = tx.update(jnp.asarray(g), state, p)
            p = optax.apply_updates(p, u)
        return np.asarray(p)

    if jax.config.jax_enable_x64:
        tol, hyper = dict(rtol=1e-12, atol=1e-13), (lr, b1, b2, eps)
    else:  # float32 (JAX's default): the reference gets the float32-rounded hyperparameters
        tol = dict(rtol=2e-5, atol=2e-5)
        hyper = tuple(float(np.float32(x)) for x in (lr, b1, b2, eps))
    np.testing.assert_allclose(
        run(ao.adamod(lr, b1, b2, b3=0.0, eps=eps)),
        _adam_folded(p0, grads, *hyper), **tol,
    )
    np.testing.assert_allclose(
        run(ao.adamod(lr, b1, b2, b3=0.0, eps=eps, algorithm="paper")),
        run(optax.adam(lr, b1, b2, eps=eps)), **tol,
    )
