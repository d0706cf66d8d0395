"""Coming from AdamW: AdaMod's built-in warmup, an explicit warmup, and b3.

Run ``python -m benchmarks.warmup_b3`` (under a minute on 2 CPU cores). An MLP
(64-128-128-10, ReLU) on scikit-learn's 8x8 digits, trained for 600 steps of
batch 64 the way an AdamW user would set it up: gradient clipping at global
norm 1, weight decay 1e-4 on the kernels only (masked), and a warmup-cosine
schedule peaking at 1e-3 (``--peak-lr``). Arms, each over the same seeds:

* ``adamw + warmup``: ``optax.adamw`` with the 60-step warmup-cosine schedule;
* ``adamod b3=... + warmup``: ``adamod`` with the same schedule, b3 in
  {0.99, 0.999}: the explicit warmup stacked on AdaMod's own;
* ``adamod b3=..., no warmup``: ``adamod`` with the cosine decay alone (no
  explicit warmup): the rate average of memory ``1/(1-b3)`` steps is the warmup.

The rate average ``s_t`` starts at 0 and needs about ``1/(1-b3)`` steps to
reach the rates it averages: 100 steps at b3 = 0.99, 1000 at b3 = 0.999, more
than this whole run. Writes ``warmup_b3.json`` (raw per-seed curves, the
machine and the date) and ``warmup_b3.md`` (the table) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.demo import load_digits_split
from benchmarks.mlp import init_mlp, mlp_logits, mlp_loss
from benchmarks.report import cpu_model

PEAK_LR = 1e-3
WEIGHT_DECAY = 1e-4
WARMUP = 60
HIDDEN = (128, 128)
BATCH = 64


def arms(steps: int, peak_lr: float = PEAK_LR) -> dict[str, Any]:
    """name -> optimizer (an optax GradientTransformation)."""
    import optax

    import adamod_optax

    warmup_cosine = optax.warmup_cosine_decay_schedule(
        0.0, peak_lr, WARMUP, steps, end_value=peak_lr * 1e-2)
    cosine = optax.cosine_decay_schedule(peak_lr, steps, alpha=1e-2)

    def kernels(params):
        import jax
        return jax.tree.map(lambda x: x.ndim >= 2, params)

    def clipped(tx):
        return optax.chain(optax.clip_by_global_norm(1.0), tx)

    out = {"adamw + warmup": clipped(
        optax.adamw(warmup_cosine, weight_decay=WEIGHT_DECAY, mask=kernels))}
    for b3 in (0.99, 0.999):
        out[f"adamod b3={b3} + warmup"] = clipped(adamod_optax.adamod(
            warmup_cosine, weight_decay=WEIGHT_DECAY, mask=kernels, b3=b3))
        out[f"adamod b3={b3}, no warmup"] = clipped(adamod_optax.adamod(
            cosine, weight_decay=WEIGHT_DECAY, mask=kernels, b3=b3))
    return out


def machine() -> dict[str, Any]:
    import jax
    import optax

    cpu = cpu_model()
    return {"cpu": cpu, "cores": os.cpu_count(), "backend": jax.default_backend(),
            "jax": jax.__version__, "optax": optax.__version__,
            "python": platform.python_version()}


def run(steps: int, seeds: Sequence[int], eval_every: int = 50,
        peak_lr: float = PEAK_LR) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import optax

    results: dict[str, Any] = {
        "task": "digits MLP 64-128-128-10, clip 1.0, masked weight decay, "
                f"{steps} steps of batch {BATCH}",
        "peak_lr": peak_lr, "weight_decay": WEIGHT_DECAY, "warmup_steps": WARMUP,
        "steps": steps, "seeds": list(seeds), "eval_every": eval_every,
        "command": "python -m benchmarks.warmup_b3",
        "date": datetime.date.today().isoformat(), "machine": machine(), "runs": {},
    }
    t_start = time.perf_counter()
    for name, tx in arms(steps, peak_lr).items():

        @jax.jit
        def chunk(params, state, xs, ys, tx=tx):
            def body(carry, batch):
                p, s = carry
                loss, grads = jax.value_and_grad(mlp_loss)(p, *batch)
                u, s = tx.update(grads, s, p)
                return (optax.apply_updates(p, u), s), loss

            (params, state), losses = jax.lax.scan(body, (params, state), (xs, ys))
            return params, state, losses

        @jax.jit
        def evaluate(params, x, y):
            return mlp_loss(params, x, y), jnp.mean(jnp.argmax(mlp_logits(params, x), -1) == y)

        runs = []
        for seed in seeds:
            xtr, ytr, xte, yte = load_digits_split(seed)
            idx = np.random.default_rng(seed).integers(0, len(xtr), (steps, BATCH))
            params = init_mlp(jax.random.PRNGKey(seed), (64, *HIDDEN, 10))
            state = tx.init(params)
            curve = {"step": [], "train_loss": [], "test_loss": [], "test_acc": []}
            t0 = time.perf_counter()
            for start in range(0, steps, eval_every):
                sl = idx[start:start + eval_every]
                params, state, losses = chunk(params, state, xtr[sl], ytr[sl])
                tl, ta = evaluate(params, xte, yte)
                curve["step"].append(start + len(sl))
                curve["train_loss"].append(float(jnp.mean(losses)))
                curve["test_loss"].append(float(tl))
                curve["test_acc"].append(float(ta))
            curve["seconds"] = time.perf_counter() - t0
            curve["seed"] = seed
            runs.append(curve)
        results["runs"][name] = runs
    results["seconds_total"] = time.perf_counter() - t_start
    return results


def table(results: dict[str, Any]) -> str:
    """Markdown: final test accuracy (mean +- std over seeds), and at 1/6 of the run."""
    steps = results["steps"]
    early = next(s for s in results["runs"][next(iter(results["runs"]))][0]["step"]
             if s >= steps // 6)
    m = results["machine"]
    lines = [
        f"Digits MLP, {steps} steps, seeds {results['seeds']}, peak lr {results['peak_lr']}, "
        f"weight decay {results['weight_decay']} (kernels), clip 1.0; warmup "
        f"{results['warmup_steps']} steps where stated. `{results['command']}` on "
        f"{m['cpu']} ({m['cores']} cores, jax {m['jax']}), {results['date']}.",
        "",
        f"| optimizer | test acc. at step {early} | final test acc. (mean +- std) | "
        "final test loss | per-seed final acc. |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results["runs"].items():
        k = runs[0]["step"].index(early)
        acc = np.array([r["test_acc"][-1] for r in runs])
        loss = np.array([r["test_loss"][-1] for r in runs])
        acc_early = np.array([r["test_acc"][k] for r in runs])
        lines.append(
            f"| {name} | {100 * acc_early.mean():.1f}% | {100 * acc.mean():.1f}% +- "
            f"{100 * acc.std():.1f} | {loss.mean():.3f} | "
            + ", ".join(f"{100 * a:.1f}" for a in acc) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peak-lr", type=float, default=PEAK_LR)
    parser.add_argument("--out", default=os.path.join("docs", "results", "warmup_b3"))
    args = parser.parse_args(argv)
    results = run(args.steps, args.seeds, peak_lr=args.peak_lr)
    if args.peak_lr != PEAK_LR or args.steps != 600:
        results["command"] += f" --steps {args.steps} --peak-lr {args.peak_lr:g}"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "warmup_b3.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = table(results)
    with open(os.path.join(args.out, "warmup_b3.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    return results


if __name__ == "__main__":
    main()
