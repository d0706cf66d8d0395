"""Record or check optimizer trajectories bit for bit.

Used to prove that a speed-only rewrite of the core changes no bit of the
results: record trajectories with the old code, then check them with the new::

    git stash; python -m benchmarks.bit_identity --record /tmp/before.npz; git stash pop
    python -m benchmarks.bit_identity --check /tmp/before.npz

Every configuration runs 40 jitted, donated steps (update + apply_updates) and
3 eager steps on a 3-leaf tree of fixed pseudo-random gradients, in float32
and float64; parameters and every state leaf are recorded after each run.
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import adamod_optax as ao  # noqa: E402


def configs():
    """name -> factory(dtype) of the optimizers to check."""
    sched = optax.warmup_cosine_decay_schedule(0.0, 3e-3, 5, 40)
    out = {
        "adamod": lambda dt: ao.adamod(1e-3, weight_decay=1e-2),
        "adamod_paper_sched": lambda dt: ao.adamod(sched, algorithm="paper", b3=0.99),
        "adamod_bf16_state": lambda dt: ao.adamod(
            2e-3, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16
        ),
        "core_identity_amsgrad": lambda dt: optax.chain(
            ao.scale_by_bounded_adam(1e-2, amsgrad=True, bias_correction="explicit"),
            optax.scale(-1.0),
        ),
        "core_chain_of_bounds": lambda dt: optax.chain(
            ao.scale_by_bounded_adam(
                sched,
                rate_transform=optax.chain(
                    ao.scale_by_momental_bound(0.9), ao.scale_by_momental_bound(0.99)
                ),
            ),
            optax.scale(-1.0),
        ),
    }
    for name in ("adabound", "amsbound", "diffgrad", "diffmod"):
        fn = getattr(ao, name, None)
        if fn is not None:
            out[name] = lambda dt, fn=fn: fn(1e-3)
    return out


def grads_for(step: int, dtype) -> dict:
    rng = np.random.default_rng(1000 + step)
    return {
        "a": jnp.asarray(rng.normal(size=(7, 5)), dtype),
        "b": jnp.asarray(rng.normal(size=(300,)) * 1e-3, dtype),
        "c": jnp.asarray(rng.standard_cauchy(size=(4, 3, 2)), dtype),
    }


def trajectory(tx, dtype, steps=40, eager_steps=3) -> dict:
    params = jax.tree.map(lambda g: jnp.ones_like(g) * 0.5, grads_for(-1, dtype))
    state = tx.init(params)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    jstep = jax.jit(step, donate_argnums=(0, 1))
    for k in range(steps):
        params, state = jstep(params, state, grads_for(k, dtype))
    for k in range(steps, steps + eager_steps):
        params, state = step(params, state, grads_for(k, dtype))
    leaves = jax.tree_util.tree_leaves_with_path((params, state))
    return {jax.tree_util.keystr(path): np.asarray(x) for path, x in leaves}


def run_all() -> dict:
    out = {}
    for name, make in configs().items():
        for dtype in (jnp.float32, jnp.float64):
            for key, arr in trajectory(make(dtype), dtype).items():
                out[f"{name}/{jnp.dtype(dtype).name}/{key}"] = arr
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (stricter than np.array_equal: -0.0, NaN payloads)."""
    return a.shape == b.shape and a.dtype.itemsize == b.dtype.itemsize and (
        np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--record", metavar="NPZ")
    g.add_argument("--check", metavar="NPZ")
    args = ap.parse_args()
    result = run_all()
    if args.record:
        np.savez(args.record, **result)
        print(f"recorded {len(result)} arrays to {args.record}")
        return 0
    ref = dict(np.load(args.check))
    bad = [k for k in ref if k in result and not same_bits(ref[k], result[k])]
    missing = sorted(set(ref) - set(result))
    common = len(set(ref) & set(result))
    print(f"{common} arrays compared, {len(bad)} differ, {len(missing)} missing")
    for k in bad[:20]:
        print("DIFFERS:", k)
    return 1 if bad or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
