"""DiffGrad/DiffMod step time with the zero weight decay skipped vs added (interleaved).

A weight decay given as a schedule cannot be checked for 0 at construction, so
``weight_decay=lambda c: 0.0`` forces the old ``g + 0 * theta`` path. CPU, 1e7 float32
params, jitted donated step, 7 repetitions of 5 steps, median ms and ratio to optax.adamw.

    python -m benchmarks.diffgrad_wd_skip
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao

n = 10_000_000
txs = {
    "adamw": optax.adamw(1e-3),
    "diffgrad (wd=0 skipped)": ao.diffgrad(1e-3),
    "diffgrad (wd=0 added, as before)": ao.diffgrad(1e-3, weight_decay=lambda c: 0.0),
    "diffmod": ao.diffmod(1e-3),
}
steps = {}
for k, tx in txs.items():

    def step(p, s, g, tx=tx):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    steps[k] = (jax.jit(step, donate_argnums=(0, 1)), tx)
g = jnp.full(n, 0.01, jnp.float32)
st = {}
for k, (f, tx) in steps.items():
    p = jnp.zeros(n, jnp.float32)
    s = tx.init(p)
    p, s = f(p, s, g)
    jax.block_until_ready(p)
    st[k] = (p, s)
times = {k: [] for k in steps}
for _ in range(7):
    for k, (f, _tx) in steps.items():
        p, s = st[k]
        t = time.perf_counter()
        for _k in range(5):
            p, s = f(p, s, g)
        jax.block_until_ready(p)
        times[k].append((time.perf_counter() - t) / 5 * 1e3)
        st[k] = (p, s)
base = np.array(times["adamw"])
for k, v in times.items():
    v = np.array(v)
    print(f"{k:34s} median {np.median(v):7.1f} ms   x adamw {np.median(v / base):.2f}")
