"""Same trajectories on GPU and CPU (float32), every optimizer in FAMILY.

300 steps of a noisy quadratic (closed loop: grad = h * (p - target) + noise_k)
under jax.lax.scan, run on the CPU device and on the default (GPU) device; a
float64 CPU run gives the scale of float32 rounding itself. Writes JSON to
argv[1]. Run: python -m benchmarks.gpu_cpu_agreement out.json
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)
from benchmarks.accuracy import FAMILY  # noqa: E402

STEPS = 300
rng = np.random.default_rng(0)
SHAPES = {"w": (64, 32), "b": (32,), "s": ()}
H = {k: rng.uniform(0.1, 10.0, size=s) for k, s in SHAPES.items()}
T = {k: rng.normal(size=s) for k, s in SHAPES.items()}
P0 = {k: rng.normal(size=s) for k, s in SHAPES.items()}
NOISE = {k: 0.1 * rng.normal(size=(STEPS, *s)) for k, s in SHAPES.items()}


def trajectory(tx, dtype, device):
    put = lambda t: jax.device_put(jax.tree.map(lambda x: jnp.asarray(x, dtype), t), device)  # noqa: E731
    h, tgt, p0, noise = put(H), put(T), put(P0), put(NOISE)

    def body(carry, n):
        p, s = carry
        g = jax.tree.map(lambda p_, h_, t_, n_: h_ * (p_ - t_) + n_, p, h, tgt, n)
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), p

    run = jax.jit(lambda p0, noise: jax.lax.scan(body, (p0, tx.init(p0)), noise)[1])
    traj = run(p0, noise)
    return jax.tree.map(lambda x: np.asarray(x, np.float64), traj)


def maxdiff(a, b):
    return max(
        float(np.max(np.abs(x - y), initial=0.0))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


cpu = jax.devices("cpu")[0]
acc = jax.devices()[0]
out = {
    "cpu": str(cpu),
    "accelerator": str(acc),
    "jax": jax.__version__,
    "steps": STEPS,
    "results": {},
}
for name in sorted(FAMILY):
    tx = FAMILY[name]()
    c32 = trajectory(tx, jnp.float32, cpu)
    g32 = trajectory(tx, jnp.float32, acc)
    c64 = trajectory(tx, jnp.float64, cpu)
    scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(c64))
    last = lambda t: jax.tree.map(lambda x: x[-1], t)  # noqa: E731
    r = {
        "max_abs_gpu_vs_cpu_f32_over_trajectory": maxdiff(g32, c32),
        "max_abs_gpu_vs_cpu_f32_final": maxdiff(last(g32), last(c32)),
        "max_abs_cpu_f32_vs_f64_over_trajectory": maxdiff(c32, c64),
        "max_abs_gpu_f32_vs_f64_over_trajectory": maxdiff(g32, c64),
        "max_abs_param": scale,
        "bit_identical": maxdiff(g32, c32) == 0.0,
    }
    out["results"][name] = r
    print(name, r, flush=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
