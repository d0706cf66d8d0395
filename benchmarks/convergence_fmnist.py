"""Fashion-MNIST convergence experiments: learning-rate robustness and the b3 sweep.

An MLP 784-256-10 (ReLU, batch 128, softmax cross-entropy) trained on the full
Fashion-MNIST training set (60,000 images) and evaluated on the 10,000 test
images after every epoch.

* ``lr`` task (the paper's Figure 6): SGD with momentum 0.9, Adam and AdaMod at
  learning rates 0.1, 0.01 and 0.001, constant, no weight decay.
* ``b3`` task (the paper's Figures 8 and 9, Fashion-MNIST part): AdaMod with
  b3 in {0.9, 0.99, 0.999, 0.9999} at learning rates 0.001, 0.01 and 0.1 (Adam beside it).

Every configuration runs 3 seeds (seed = parameter initialisation and data
order) as one ``jax.jit(jax.vmap(...))`` call; final test accuracy is reported
as median (mean +- sample std). Results go to ``docs/results/`` as JSON, a
Markdown table and a PNG.

Run through the CLI (``python -m benchmarks.convergence fmnist --help``);
``--smoke`` (or ``CI=true`` / ``ADAMOD_SMOKE=1``) shrinks everything to a few
seconds. Needs ``sudo apt-get install -y dataset-fashion-mnist``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax
from benchmarks.datasets import DatasetNotFoundError, load_fashion_mnist
from benchmarks.mlp import mlp_logits, mlp_loss
from benchmarks.report import cpu_model
from benchmarks.smoke import LABEL as SMOKE_LABEL
from benchmarks.smoke import label as smoke_label
from benchmarks.smoke import smoke_requested

LEARNING_RATES = (0.1, 0.01, 0.001)
B3_VALUES = (0.9, 0.99, 0.999, 0.9999)
B3_LEARNING_RATES = (0.001, 0.01, 0.1)
SEEDS = (0, 1, 2)
BATCH_SIZE = 128
EPOCHS = 30
HIDDEN = 256
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "docs", "results")

# Smoke mode: a slice of the data, two epochs. Seconds, not minutes.
SMOKE_TRAIN, SMOKE_TEST, SMOKE_EPOCHS = 2048, 1000, 2


def _log(message: str) -> None:
    if smoke_requested():  # smoke-size numbers never appear unlabelled
        message = f"[{SMOKE_LABEL}] {message.strip()}"
    print(message, flush=True)


def grid_optimizers() -> dict[str, Callable[[float], optax.GradientTransformation]]:
    """The three optimizers of the learning-rate grid, as ``lr -> transformation``."""
    return {
        "SGDM": lambda lr: optax.sgd(lr, momentum=0.9),
        "Adam": lambda lr: optax.adam(lr),
        "AdaMod": lambda lr: adamod_optax.adamod(lr),
    }


class Data(NamedTuple):
    x_train: jax.Array  # float32[n, 784] in [0, 1]
    y_train: jax.Array  # int32[n]
    x_test: jax.Array
    y_test: jax.Array


def load_data(smoke: bool = False, n_train: int | None = None, n_test: int | None = None) -> Data:
    """Fashion-MNIST flattened and scaled to [0, 1]; the first ``n_*`` examples if given."""
    raw = load_fashion_mnist()
    if smoke:
        n_train, n_test = n_train or SMOKE_TRAIN, n_test or SMOKE_TEST

    def prep(x, y, n):
        x, y = x[:n], y[:n]
        return (jnp.asarray(x.reshape(len(x), -1), jnp.float32) / 255.0,
                jnp.asarray(y, jnp.int32))

    return Data(*prep(raw.x_train, raw.y_train, n_train), *prep(raw.x_test, raw.y_test, n_test))


def init_mlp(key: jax.Array, sizes: Sequence[int] = (784, HIDDEN, 10)):
    """Weights drawn from N(0, 1/fan_in) (LeCun normal, untruncated), zero biases."""
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), itertools.pairwise(sizes)):
        w = jax.random.normal(k, (n_in, n_out), jnp.float32) / np.sqrt(n_in)
        params.append({"w": w, "b": jnp.zeros((n_out,), jnp.float32)})
    return params


def make_train(make_tx: Callable[[jax.Array], optax.GradientTransformation], epochs: int,
               batch_size: int = BATCH_SIZE):
    """``train(keys, values, data) -> (train_loss, test_acc)``, each ``[values, seeds, epochs]``.

    ``make_tx(value)`` builds the optimizer from one hyperparameter value (a
    traced float32 scalar: a learning rate, a ``b3``...). Every value and
    every seed is trained in one jitted, doubly vmapped call, so a whole row of
    a grid compiles once. One key per seed draws the initial parameters and the
    data order of every epoch (the same for every value: common random
    numbers). The last incomplete batch of an epoch is dropped. ``train_loss``
    is the mean minibatch loss over the epoch, ``test_acc`` the accuracy on the
    test set at the end of the epoch.
    """

    def one(key, value, data: Data):
        tx = make_tx(value)
        n = data.x_train.shape[0]
        steps = n // batch_size
        k_init, k_data = jax.random.split(key)
        params = init_mlp(k_init)
        opt_state = tx.init(params)

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(mlp_loss)(params, data.x_train[idx], data.y_train[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def epoch(carry, k):
            order = jax.random.permutation(k, n)[: steps * batch_size].reshape(steps, batch_size)
            carry, losses = jax.lax.scan(step, carry, order)
            logits = mlp_logits(carry[0], data.x_test)
            acc = jnp.mean(jnp.argmax(logits, -1) == data.y_test)
            return carry, (losses.mean(), acc)

        _, (train_loss, test_acc) = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(k_data, epochs))
        return train_loss, test_acc

    per_seed = jax.vmap(one, in_axes=(0, None, None))
    return jax.jit(jax.vmap(per_seed, in_axes=(None, 0, None)))


def run(make_tx: Callable[[jax.Array], optax.GradientTransformation], values: Sequence[float],
        data: Data, *, seeds=SEEDS, epochs: int = EPOCHS,
        batch_size: int = BATCH_SIZE) -> list:
    """Trains ``make_tx(value)`` for every value and seed (one compiled call).

    Returns one dict per value: ``train_loss`` and ``test_acc`` as
    ``[seed][epoch]`` lists, ``final_test_acc`` per seed, and ``seconds``, the
    wall time of the whole call (compilation included) shared by all values.
    """
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    train = make_train(make_tx, epochs, batch_size)
    t0 = time.perf_counter()
    loss, acc = jax.device_get(train(keys, jnp.asarray(values, jnp.float32), data))
    seconds = time.perf_counter() - t0
    return [{
        "seeds": list(seeds),
        "train_loss": np.asarray(loss[i], np.float64).tolist(),
        "test_acc": np.asarray(acc[i], np.float64).tolist(),
        "final_test_acc": np.asarray(acc[i, :, -1], np.float64).tolist(),
        "seconds": seconds,
    } for i in range(len(values))]


def summary(values: Sequence[float]) -> dict:
    """Median, mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(values, np.float64)
    finite = np.isfinite(v)
    return {
        "median": float(np.median(v)),
        "mean": float(np.mean(v)),
        "std": float(np.std(v, ddof=1)) if v.size > 1 else 0.0,
        "all_finite": bool(finite.all()),
    }


def fmt(values: Sequence[float]) -> str:
    """``median (mean ± std)`` in percent, e.g. ``88.1 (88.0 ± 0.2)``."""
    s = summary(values)
    return f"{100 * s['median']:.1f} ({100 * s['mean']:.1f} ± {100 * s['std']:.1f})"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "adamod_optax": adamod_optax.__version__,
    }


def _config(data: Data, epochs: int, seeds, smoke: bool) -> dict:
    return {
        "model": f"MLP 784-{HIDDEN}-10, ReLU, weights N(0, 1/fan_in), zero biases",
        "batch_size": BATCH_SIZE,
        "epochs": epochs,
        "seeds": list(seeds),
        "n_train": int(data.x_train.shape[0]),
        "n_test": int(data.x_test.shape[0]),
        "smoke": smoke,
        "machine": machine(),
    }


def family_optimizers() -> dict[str, Callable[[float], optax.GradientTransformation]]:
    """Adam, AdaMod, AdaBound, AMSBound, DiffGrad and DiffMod, each at its defaults."""
    return {
        "Adam": lambda lr: optax.adam(lr),
        "AdaMod": lambda lr: adamod_optax.adamod(lr),
        "AdaBound": lambda lr: adamod_optax.adabound(lr),
        "AMSBound": lambda lr: adamod_optax.amsbound(lr),
        "DiffGrad": lambda lr: adamod_optax.diffgrad(lr),
        "DiffMod": lambda lr: adamod_optax.diffmod(lr),
    }




def lr_grid(data: Data, *, epochs: int, seeds=SEEDS, learning_rates=LEARNING_RATES,
            optimizers: dict[str, Callable] | None = None, log=_log) -> dict:
    """The Figure 6 grid: every optimizer (default :func:`optimizers`) at every learning rate,
    every seed. Returns ``{name: {repr(lr): run(...)}}``."""
    opts = grid_optimizers() if optimizers is None else optimizers
    results: dict = {}
    for name, make in opts.items():
        runs = run(make, learning_rates, data, seeds=seeds, epochs=epochs)
        results[name] = {repr(lr): r for lr, r in zip(learning_rates, runs)}
        for lr, r in zip(learning_rates, runs):
            log(f"  {name:8s} lr={lr:<6g} final test acc {fmt(r['final_test_acc'])}")
        log(f"  [{name}: {len(learning_rates)} learning rates x {len(seeds)} seeds in "
            f"{runs[0]['seconds']:.1f} s]")
    return results


def b3_sweep(data: Data, *, epochs: int, seeds=SEEDS, b3_values=B3_VALUES,
             learning_rates=B3_LEARNING_RATES, log=_log) -> dict:
    """AdaMod at every b3 and learning rate, Adam at the same rates for reference.

    Returns ``{repr(lr): {"b3=<value>": run, ..., "Adam": run}}``.
    """
    results: dict = {repr(lr): {} for lr in learning_rates}
    for lr in learning_rates:
        runs = run(lambda b3, lr=lr: adamod_optax.adamod(lr, b3=b3), b3_values, data,
                   seeds=seeds, epochs=epochs)
        for b3, r in zip(b3_values, runs):
            results[repr(lr)][f"b3={b3!r}"] = r
            log(f"  AdaMod lr={lr:<6g} b3={b3:<7g} final test acc {fmt(r['final_test_acc'])}")
        log(f"  [{len(b3_values)} b3 values x {len(seeds)} seeds in {runs[0]['seconds']:.1f} s]")
    adam = run(lambda lr: optax.adam(lr), learning_rates, data, seeds=seeds, epochs=epochs)
    for lr, r in zip(learning_rates, adam):
        results[repr(lr)]["Adam"] = r
        log(f"  Adam   lr={lr:<6g}            final test acc {fmt(r['final_test_acc'])}")
    return results


# ----------------------------------------------------------------------------- tables and plots


def lr_table(results: dict) -> str:
    """Markdown: optimizer rows, learning-rate columns, final test accuracy (%)."""
    lrs = list(next(iter(results.values())))
    head = "| optimizer | " + " | ".join(f"lr = {lr}" for lr in lrs) + " |"
    rule = "|---|" + "---|" * len(lrs)
    rows = [f"| {name} | " + " | ".join(fmt(by_lr[lr]["final_test_acc"]) for lr in lrs) + " |"
            for name, by_lr in results.items()]
    return "\n".join([head, rule, *rows])


def b3_table(results: dict) -> str:
    """Markdown: one row per (optimizer, b3), learning-rate columns, final test accuracy (%)."""
    lrs = list(results)
    keys = list(results[lrs[0]])
    head = "| optimizer | " + " | ".join(f"lr = {lr}" for lr in lrs) + " |"
    rule = "|---|" + "---|" * len(lrs)
    rows = []
    for k in keys:
        label = f"AdaMod, {k}" if k.startswith("b3=") else k
        rows.append(f"| {label} | " + " | ".join(fmt(results[lr][k]["final_test_acc"])
                                               for lr in lrs) + " |")
    return "\n".join([head, rule, *rows])


def _band(ax, curves, label, color=None, style="-"):
    c = np.asarray(curves) * 100
    x = np.arange(1, c.shape[1] + 1)
    (line,) = ax.plot(x, np.median(c, 0), style, label=label, color=color)
    ax.fill_between(x, c.min(0), c.max(0), alpha=0.2, color=line.get_color())


def plot_lr(results: dict, path: str | None = None, title: str = ""):
    """One panel per optimizer: test accuracy per epoch at each learning rate (median of seeds,
    band = min..max), plus a panel of final accuracy against the learning rate. Returns the
    figure, saved to ``path`` if given."""
    import matplotlib.pyplot as plt

    names = list(results)
    panels = len(names) + 1
    ncols = min(panels, 4)
    nrows = -(-panels // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.4 * nrows), dpi=90,
                             squeeze=False)
    axes = list(grid.ravel()[:panels])
    for unused in grid.ravel()[panels:]:
        unused.set_visible(False)
    lo = 100.0
    for ax, name in zip(axes, names):
        for lr, r in results[name].items():
            _band(ax, r["test_acc"], f"lr={lr}")
            lo = min(lo, np.min(np.asarray(r["test_acc"])[:, -1]) * 100)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for row in grid:
        row[0].set_ylabel("test accuracy (%)")
    ax = axes[-1]
    for name in names:
        lrs = [float(lr) for lr in results[name]]
        finals = np.asarray([results[name][lr]["final_test_acc"] for lr in results[name]]) * 100
        ax.errorbar(lrs, np.median(finals, 1), yerr=[np.median(finals, 1) - finals.min(1),
                    finals.max(1) - np.median(finals, 1)], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_title("final test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for a in axes[:-1]:
        a.legend(fontsize=8, loc="lower right")
        a.set_ylim(max(lo - 5, 0), None)
    return _finish_figure(fig, path, title)


def _finish_figure(fig, path: str | None, title: str):
    if title:
        smoke = title.startswith(SMOKE_LABEL)  # make the smoke label stand out
        fig.suptitle(title, fontsize=12 if smoke else 10, color="crimson" if smoke else None)
    fig.tight_layout()
    if path:
        fig.savefig(path)
    return fig


def plot_b3(results: dict, path: str | None = None, title: str = ""):
    """One panel per learning rate: AdaMod test accuracy per epoch for each b3, Adam dashed.
    Returns the figure, saved to ``path`` if given."""
    import matplotlib.pyplot as plt

    lrs = list(results)
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.6 * len(lrs), 3.4), dpi=90, squeeze=False)
    for ax, lr in zip(axes[0], lrs):
        for k, r in results[lr].items():
            if k == "Adam":
                _band(ax, r["test_acc"], "Adam", color="k", style="--")
            else:
                _band(ax, r["test_acc"], f"AdaMod {k}")
        ax.set_title(f"lr = {lr}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("test accuracy (%)")
    return _finish_figure(fig, path, title)


class NotebookSetup(NamedTuple):
    smoke: bool
    epochs: int
    seeds: tuple
    data: Data


def notebook_setup() -> NotebookSetup:
    """What the Fashion-MNIST notebooks start from: smoke flag, epochs, seeds and the data
    (a slice in smoke mode), with a one-line summary printed."""
    smoke = smoke_requested()
    epochs = SMOKE_EPOCHS if smoke else EPOCHS
    seeds = (0, 1) if smoke else SEEDS
    data = load_data(smoke=smoke)
    print(smoke_label(f"{'smoke' if smoke else 'full'} mode: {data.x_train.shape[0]} training "
                      f"images, {data.x_test.shape[0]} test images, {epochs} epochs, seeds {seeds}",
                      smoke))
    return NotebookSetup(smoke, epochs, seeds, data)


def _write(out: str, stem: str, payload: dict, table: str, plot) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump(payload, f, indent=1)
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write(table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close(plot(os.path.join(out, stem + ".png")))
    print(f"wrote {os.path.join(out, stem)}.{{json,md,png}}")


# ----------------------------------------------------------------------------- CLI entry points


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--smoke", action="store_true",
                   help="tiny version (also on with CI=true or ADAMOD_SMOKE=1)")
    p.add_argument("--epochs", type=int, default=None, help=f"default {EPOCHS} ({SMOKE_EPOCHS} "
                   "in smoke mode)")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (default 3)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default docs/results)")
    p.add_argument("--lrs", type=float, nargs="+", default=None,
                   help="learning rates (default: the task's)")
    return p


def _setup(args):
    smoke = args.smoke or smoke_requested()
    epochs = args.epochs or (SMOKE_EPOCHS if smoke else EPOCHS)
    seeds = tuple(range(args.seeds))
    try:
        data = load_data(smoke=smoke)
    except DatasetNotFoundError as err:  # a clear message, not a traceback
        raise SystemExit(f"error: {err}") from None
    suffix = "_smoke" if smoke else ""
    return smoke, epochs, seeds, data, suffix


def _grid_task(argv, task: str, doc: str, optimizers, label: str, out_name: str,
               title: str) -> dict:
    """A learning-rate grid task: train, print the table, write JSON/Markdown/PNG."""
    args = _parser(f"convergence.py {task}", doc).parse_args(argv)
    smoke, epochs, seeds, data, suffix = _setup(args)
    print(f"Fashion-MNIST {label}: {len(data.x_train)} train, {epochs} epochs, "
          f"seeds {list(seeds)}")
    t0 = time.perf_counter()
    lrs = tuple(args.lrs or LEARNING_RATES)
    results = lr_grid(data, epochs=epochs, seeds=seeds, learning_rates=lrs,
                      optimizers=optimizers)
    payload = {"task": task, "config": _config(data, epochs, seeds, smoke),
               "learning_rates": list(lrs), "results": results,
               "seconds_total": time.perf_counter() - t0}
    table = lr_table(results)
    print(table)
    title = f"{title}, {epochs} epochs, {len(seeds)} seeds (line = median, band = min..max)"
    _write(args.out, out_name + suffix, payload, table, lambda p: plot_lr(results, p, title))
    return payload


def main_lr(argv=None) -> dict:
    """``fmnist`` task: the learning-rate grid (Figure 6)."""
    return _grid_task(argv, "fmnist", main_lr.__doc__, None, "learning-rate grid", "fmnist_lr",
                      f"Fashion-MNIST MLP 784-{HIDDEN}-10, batch {BATCH_SIZE}")


def main_family(argv=None) -> dict:
    """``fmnist-family`` task: the learning-rate grid over the bounded-rate family."""
    return _grid_task(argv, "fmnist-family", main_family.__doc__, family_optimizers(),
                      "family grid", "fmnist_family",
                      "Bounded-rate family, Fashion-MNIST MLP")


def main_b3(argv=None) -> dict:
    """``fmnist-b3`` task: AdaMod's b3 sweep (Figures 8/9, Fashion-MNIST part)."""
    parser = _parser("convergence.py fmnist-b3", main_b3.__doc__)
    parser.add_argument("--b3", type=float, nargs="+", default=None,
                        help=f"b3 values (default {' '.join(map(str, B3_VALUES))})")
    args = parser.parse_args(argv)
    smoke, epochs, seeds, data, suffix = _setup(args)
    print(f"Fashion-MNIST b3 sweep: {len(data.x_train)} train, {epochs} epochs, "
          f"seeds {list(seeds)}")
    t0 = time.perf_counter()
    b3s, lrs = tuple(args.b3 or B3_VALUES), tuple(args.lrs or B3_LEARNING_RATES)
    results = b3_sweep(data, epochs=epochs, seeds=seeds, b3_values=b3s, learning_rates=lrs)
    payload = {"task": "fmnist-b3", "config": _config(data, epochs, seeds, smoke),
               "b3_values": list(b3s), "learning_rates": list(lrs),
               "results": results, "seconds_total": time.perf_counter() - t0}
    table = b3_table(results)
    print(table)
    title = (f"AdaMod b3 sweep, Fashion-MNIST MLP, {epochs} epochs, {len(seeds)} seeds "
             "(line = median, band = min..max)")
    _write(args.out, "fmnist_b3" + suffix, payload, table,
           lambda p: plot_b3(results, p, title))
    return payload
