"""Effect of bfloat16 optimizer state on a real (small) training run.

A 64-256-256-10 MLP (tanh) on scikit-learn's digits (1437 train / 360 test
images, standardised), cross-entropy, minibatches of 64, for several seeds.
Each seed trains once per optimizer option from the same initial weights and
the same batch order; reported are the state bytes per parameter, the final
training loss and the test accuracy (mean and std over seeds), and the
relative distance of the final weights from the float32-state run.

Usage::

    python -m benchmarks.low_precision_state --out bench_out
    python -m benchmarks.low_precision_state --quick   # 2 seeds, 10 epochs
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao

BF16 = jnp.bfloat16
OPTIONS = {
    "adamod, float32 state": lambda: ao.adamod(1e-3),
    "adamod, mu_dtype=bfloat16": lambda: ao.adamod(1e-3, mu_dtype=BF16),
    "adamod, mu_dtype=nu_dtype=bfloat16": lambda: ao.adamod(1e-3, mu_dtype=BF16, nu_dtype=BF16),
    "optax.adamw, float32 state": lambda: optax.adamw(1e-3),
    "optax.adamw, mu_dtype=bfloat16": lambda: optax.adamw(1e-3, mu_dtype=BF16),
}


def load_digits():
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    x, y = _load(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    f = lambda a: jnp.asarray((a - mu) / sd, jnp.float32)  # noqa: E731
    return f(xtr), jnp.asarray(ytr), f(xte), jnp.asarray(yte)


def init_mlp(key, sizes=(64, 256, 256, 10)):
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        key, k = jax.random.split(key)
        params[f"w{i}"] = jax.random.normal(k, (a, b), jnp.float32) / np.sqrt(a)
        params[f"b{i}"] = jnp.zeros((b,), jnp.float32)
    return params


def forward(params, x):
    n = len(params) // 2
    for i in range(n):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < n - 1:
            x = jnp.tanh(x)
    return x


def loss_fn(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()


def train(tx, params, data, epochs, batch, seed):
    xtr, ytr, xte, yte = data
    state = tx.init(params)
    n_batches = xtr.shape[0] // batch

    @jax.jit
    def epoch(params, state, perm):
        def body(carry, idx):
            p, s = carry
            g = jax.grad(loss_fn)(p, xtr[idx], ytr[idx])
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        idx = perm[: n_batches * batch].reshape(n_batches, batch)
        (params, state), _ = jax.lax.scan(body, (params, state), idx)
        return params, state

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        params, state = epoch(params, state, jnp.asarray(rng.permutation(xtr.shape[0])))
    train_loss = float(loss_fn(params, xtr, ytr))
    acc = float(jnp.mean(jnp.argmax(forward(params, xte), -1) == yte))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state) if x.ndim > 0)
    n = sum(x.size for x in jax.tree.leaves(params))
    return params, train_loss, acc, state_bytes / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 5)
    epochs = args.epochs or (10 if args.quick else 40)
    data = load_digits()
    res = {name: {"loss": [], "acc": [], "dist": [], "bpp": None} for name in OPTIONS}
    for seed in range(seeds):
        p0 = init_mlp(jax.random.PRNGKey(seed))
        ref = {}
        for name, make in OPTIONS.items():
            p, loss, acc, bpp = train(make(), p0, data, epochs, 64, seed)
            family = name.split(",")[0]
            if name.endswith("float32 state"):
                ref[family] = p
            num = sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(
                jax.tree.leaves(p), jax.tree.leaves(ref[family]), strict=True))
            den = sum(float(jnp.sum(b ** 2)) for b in jax.tree.leaves(ref[family]))
            r = res[name]
            r["loss"].append(loss)
            r["acc"].append(acc)
            r["dist"].append((num / den) ** 0.5)
            r["bpp"] = bpp
    n_params = sum(x.size for x in jax.tree.leaves(init_mlp(jax.random.PRNGKey(0))))
    lines = [
        f"Digits MLP (64-256-256-10, {n_params} "
        f"params), lr 1e-3, batch 64, {epochs} epochs, {seeds} seeds "
        f"(`python -m benchmarks.low_precision_state{' --quick' if args.quick else ''}`):",
        "",
        "| optimizer, state | state B/param | final train loss | test accuracy | "
        "weights vs float32-state run |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in res.items():
        lines.append(
            f"| {name} | {r['bpp']:.0f} | {np.mean(r['loss']):.4f} +- {np.std(r['loss']):.4f} | "
            f"{np.mean(r['acc']) * 100:.2f}% +- {np.std(r['acc']) * 100:.2f} | "
            f"{np.mean(r['dist']):.2e} |"
        )
    md = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "low_precision_state.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "low_precision_state.json"), "w") as f:
        json.dump({"epochs": epochs, "seeds": seeds, "results": res}, f, indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
