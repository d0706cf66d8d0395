"""NaN/Inf propagation, a 1e5-step scan, low-precision state.

The figures behind the robustness guide (docs/guides/robustness.md).

Run from the repository root (CPU, about a minute):

    python -m benchmarks.robustness > docs/results/robustness_cpu.txt

``--steps 1000`` shortens the long scan for a smoke run (its figures then mean nothing).
The long-run gradients and the scan (:func:`long_grads`, :func:`scan_run`) are shared with
tests/test_robustness.py.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from benchmarks import numpy_reference as reference
from benchmarks.accuracy import FAMILY

LONG_STEPS = 100_000


def long_grads(steps=LONG_STEPS):
    """Open-loop gradients of 4 coordinates, the last ~1e-3 times smaller; float32-exact."""
    rng = np.random.default_rng(7)
    k = np.arange(steps)[:, None]
    g = np.cos(1e-3 * k * np.array([1.0, 3.0, 7.0, 0.5])) + 0.3 * rng.normal(size=(steps, 4))
    g[:, 3] *= 1e-3  # a small-gradient coordinate
    return g.astype(np.float32).astype(np.float64)  # exactly representable in float32


def scan_run(tx, p0, grads):
    """``tx`` over the gradient sequence under one jitted ``lax.scan``: (params, state)."""

    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (p, s), _ = jax.jit(lambda p, gs: jax.lax.scan(body, (p, tx.init(p)), gs))(p0, grads)
    return p, s


def paths_nonfinite(state):
    out = []
    for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact) and not bool(jnp.all(jnp.isfinite(x))):
            vals = np.asarray(x).ravel()
            out.append(f"{jax.tree_util.keystr(path)}={vals[0]}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=LONG_STEPS,
                        help=f"steps of the long scan ({LONG_STEPS} for the quoted figures)")
    steps = parser.parse_args(argv).steps
    jax.config.update("jax_enable_x64", True)
    print("## NaN/Inf gradient in element 0 at step 3, then 1000 clean steps (no guard)")
    for name in sorted(FAMILY):
        for bad in (np.nan, np.inf):
            tx = FAMILY[name]()
            upd = jax.jit(tx.update)
            p = jnp.ones(2)
            s = tx.init(p)
            first = None
            for k in range(1003):
                g = jnp.array([1.0, 1.0]) * (1 + 0.1 * np.sin(k))
                if k == 2:
                    g = g.at[0].set(bad)
                u, s = upd(g, s, p)
                if k == 2:
                    first = (float(u[0]), paths_nonfinite(s))
                if k == 3:
                    nxt = float(u[0])
            print(
                f"{name:13s} g={bad}: update at bad step {first[0]}, next {nxt}, "
                f"after 1000 more {float(u[0])};"
                f" element 1 finite: {bool(jnp.isfinite(u[1]))}; "
                f"non-finite state after bad step: {first[1]};"
                f" after 1000 more: {paths_nonfinite(s)}"
            )

    length = "1e5" if steps == LONG_STEPS else str(steps)
    print(f"\n## {length}-step lax.scan vs float64 NumPy reference (error / distance travelled)")

    grads = long_grads(steps)
    p0 = np.array([1.0, -1.0, 0.5, 2.0])
    for alg, cls in (("released", reference.AdaModReleased), ("paper", reference.AdaModPaper)):
        ref = cls()
        p = {"w": p0.copy()}
        for g in grads:
            p = ref.step(p, {"w": g}, 1e-3, weight_decay=1e-4)
        travelled = np.abs(p["w"] - p0) + 1e-3
        for dt in (jnp.float64, jnp.float32):
            pj, _ = scan_run(
                ao.adamod(1e-3, weight_decay=1e-4, algorithm=alg),
                jnp.asarray(p0, dt),
                jnp.asarray(grads, dt),
            )
            err = np.abs(np.asarray(pj, np.float64) - p["w"])
            print(
                f"{alg:8s} {jnp.dtype(dt).name}: final {np.asarray(pj, np.float64)}, "
                f"travelled {travelled}, max err/travelled {np.max(err / travelled):.3g}, "
                f"max abs err {np.max(err):.3g}"
            )

    print("\n## Low-precision state: rate average after 3000 steps of g = 1 (lr 1e-3), "
          "and the step")
    for pdt in (jnp.bfloat16, jnp.float16):
        for sdt in (None, jnp.float32):
            tx = ao.adamod(1e-3, mu_dtype=sdt, nu_dtype=sdt)
            p = jnp.zeros(1, pdt)
            s = tx.init(p)
            upd = jax.jit(tx.update)
            for _ in range(3000):
                u, s = upd(jnp.ones(1, pdt), s, p)
            print(
                f"params {jnp.dtype(pdt).name:8s} "
                f"state {('default' if sdt is None else 'float32'):8s}: "
                f"s_3000 = {float(s[0].rate_state.rate_avg[0]):.4g}, v = {float(s[0].nu[0]):.4g}, "
                f"step = {float(u[0]):.4g}"
            )
    ref = reference.AdaModReleased()
    p = {"w": np.zeros(1)}
    for _ in range(3000):
        p_new = ref.step(p, {"w": np.ones(1)}, 1e-3)
        step = p_new["w"] - p["w"]
        p = p_new
    print(
        f"float64 reference: s_3000 = {ref.s['w'][0]:.4g}, v = {ref.v['w'][0]:.4g}, "
        f"step = {step[0]:.4g}"
    )


if __name__ == "__main__":
    main()
