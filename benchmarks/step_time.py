"""Per-step time of a jitted, donated train step, side by side with optax and PyTorch.

A step is ``update`` + ``apply_updates`` compiled into one XLA program with the
params and optimizer state donated, so every buffer is updated in place. All
contenders at one size run interleaved (round-robin repetitions) in this one
process, so a noisy neighbour slows them alike; we report medians, the spread
(IQR / median) and the median of the per-repetition ratios to optax.adamw.

Contenders:
  * ``stream``: the in-place kernel ``a = a + s * c`` (donated), 8 bytes per
    element: the machine's attainable memory bandwidth at that size.
  * optax.adam, optax.adamw, and every optimizer of adamod_optax that exists
    (adamod, adabound, amsbound, diffgrad, diffmod), float32 state, plus the
    lower-precision state option (``mu_dtype=nu_dtype=bfloat16``).
  * ``adamod (eta materialised)``: adamod with the core's rate recomputation
    switched off, to show what it buys on this backend.
  * with PyTorch importable: torch-optimizer's ``AdaMod`` and
    pytorch-optimizer's ``AdaMod`` (``foreach`` on and off; the best mode is
    the one reported), on the same shapes and the same number of threads.

Bytes per parameter: 4 for reading the gradient, plus read + write of the
param and of every state leaf (counted from the actual state, so bfloat16
moments count 2 bytes). Adam: 4 + 2 * (4 + 8) = 28; AdaMod: 36.

Also measures the compile time (trace + lower + compile) of the step on the
148-leaf tree for adamod and optax.adamw, alternating, median of 3.

Usage::

    python -m benchmarks.step_time --out bench_out          # full, <= ~8 min
    python -m benchmarks.step_time --quick --out bench_quick # about a minute

Outputs ``step_time.md`` (tables), ``step_time.json`` and ``step_time.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# PyTorch's OpenMP threads busy-wait by default; on a shared machine that
# makes its 2-thread runs several times slower than its 1-thread runs. Passive
# waiting is PyTorch's best case here (set before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from benchmarks.report import cpu_model

LR = 1e-3


# ----------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------


def gpt2_like_shapes(n_layer: int = 12, d: int = 768, vocab: int = 256, ctx: int = 1024):
    """148 leaves, ~86M params: GPT-2 small's blocks with a byte-level vocabulary."""
    shapes = {"wte": (vocab, d), "wpe": (ctx, d)}
    for i in range(n_layer):
        p = f"h{i:02d}."
        shapes.update({
            p + "ln_1.g": (d,), p + "ln_1.b": (d,),
            p + "attn.c_attn.w": (d, 3 * d), p + "attn.c_attn.b": (3 * d,),
            p + "attn.c_proj.w": (d, d), p + "attn.c_proj.b": (d,),
            p + "ln_2.g": (d,), p + "ln_2.b": (d,),
            p + "mlp.c_fc.w": (d, 4 * d), p + "mlp.c_fc.b": (4 * d,),
            p + "mlp.c_proj.w": (4 * d, d), p + "mlp.c_proj.b": (d,),
        })
    shapes.update({"ln_f.g": (d,), "ln_f.b": (d,)})
    return shapes


def size_shapes(name: str) -> dict:
    if name == "gpt2":
        return gpt2_like_shapes()
    if name == "tree10m":  # a small model: 6 blocks of width 384, ~11M params, 76 leaves
        return gpt2_like_shapes(n_layer=6, d=384)
    return {"w": (int(float(name)),)}


def n_params(shapes: dict) -> int:
    return sum(math.prod(s) for s in shapes.values())


# ----------------------------------------------------------------------------
# Contenders
# ----------------------------------------------------------------------------


def jax_optimizers(include_family: bool = True, include_ablation: bool = True):
    """name -> factory of the optimizer."""
    bf16 = jnp.bfloat16
    out: dict[str, Callable[[], Any]] = {
        "optax.adam": lambda: optax.adam(LR),
        "optax.adamw": lambda: optax.adamw(LR, weight_decay=1e-4),
        "adamod": lambda: ao.adamod(LR, weight_decay=1e-4),
        "optax.adamw bf16 mu": lambda: optax.adamw(LR, weight_decay=1e-4, mu_dtype=bf16),
        "adamod bf16 mu/nu": lambda: ao.adamod(
            LR, weight_decay=1e-4, mu_dtype=bf16, nu_dtype=bf16
        ),
    }
    if include_ablation:
        out["adamod (eta materialised)"] = lambda: ao.adamod(
            LR, weight_decay=1e-4, fast_path="plain"
        )
    if include_family:
        for name in ("adabound", "amsbound", "diffgrad", "diffmod"):
            fn = getattr(ao, name, None)
            if fn is not None:
                out[name] = lambda fn=fn: fn(LR)
    return out


class JaxStep:
    """A compiled, donated step; params are passed around between contenders."""

    def __init__(self, name, tx, params, grads):
        self.name = name
        self.state = tx.init(params)
        leaves = [x for x in jax.tree.leaves(self.state) if getattr(x, "ndim", 0) > 0]
        n = sum(x.size for x in jax.tree.leaves(params))
        self.state_bytes = sum(x.nbytes for x in leaves)
        p_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
        g_bytes = sum(x.nbytes for x in jax.tree.leaves(grads))
        self.bytes_per_param = (g_bytes + 2 * (p_bytes + self.state_bytes)) / n

        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        t0 = time.perf_counter()
        jitted = jax.jit(step, donate_argnums=(0, 1))
        self.fn = jitted.lower(params, self.state, grads).compile()
        self.compile_s = time.perf_counter() - t0
        self.grads = grads

    def run(self, shared, k):
        p = shared["jax_params"]
        s = self.state
        for _ in range(k):
            p, s = self.fn(p, s, self.grads)
        jax.block_until_ready((p, s))
        shared["jax_params"], self.state = p, s


class StreamStep:
    """``a = a + s * c``, donated: read 4 + write 4 bytes per element."""

    name = "stream a+=s*c"
    bytes_per_param = 8.0

    def __init__(self, n):
        self.a = jnp.zeros((n,), jnp.float32)
        self.fn = jax.jit(lambda a, s, c: a + s * c, donate_argnums=0).lower(
            self.a, jnp.float32(1e-6), jnp.float32(0.5)
        ).compile()
        self.s, self.c = jnp.float32(1e-6), jnp.float32(0.5)

    def run(self, shared, k):
        a = self.a
        for _ in range(k):
            a = self.fn(a, self.s, self.c)
        a.block_until_ready()
        self.a = a


def torch_contenders(shapes, threads):
    """PyTorch AdaMods on the same shapes: each implementation in each of its
    modes (``foreach``) and with 1 and ``threads`` intra-op threads; the table
    keeps every mode, the summary the fastest."""
    try:
        import torch
    except ImportError:
        return [], None
    gen = torch.Generator().manual_seed(0)
    params = [torch.zeros(s, dtype=torch.float32, requires_grad=True) for s in shapes.values()]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    makers = []
    try:
        import torch_optimizer

        makers.append(("torch-optimizer AdaMod", lambda: torch_optimizer.AdaMod(params, lr=LR)))
    except ImportError:
        pass
    try:
        import pytorch_optimizer

        for fe in (False, True):
            makers.append((
                f"pytorch-optimizer AdaMod foreach={fe}",
                lambda fe=fe: pytorch_optimizer.AdaMod(
                    params, lr=LR, betas=(0.9, 0.999, 0.999), foreach=fe
                ),
            ))
    except ImportError:
        pass
    steps = []
    thread_modes = sorted({1, threads})
    for name, make in makers:
        try:
            opt = make()
            with torch.no_grad():
                opt.step()  # creates the state
        except Exception as e:
            print(f"  skipping {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        for t in thread_modes:
            steps.append(TorchStep(f"{name} threads={t}", opt, params, t))
    return steps, torch.__version__


class TorchStep:
    def __init__(self, name, opt, params, threads):
        import torch

        self.name, self.opt, self.threads = name, opt, threads
        n = sum(p.numel() for p in params)
        state_bytes = sum(
            v.numel() * v.element_size()
            for st in opt.state.values() for v in st.values()
            if torch.is_tensor(v) and v.dim() > 0
        )
        self.bytes_per_param = 4 + 2 * (4 + state_bytes / n)
        self.compile_s = float("nan")

    def run(self, shared, k):
        import torch

        torch.set_num_threads(self.threads)
        with torch.no_grad():
            for _ in range(k):
                self.opt.step()


# ----------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------


def bench_size(size, reps, min_time, with_torch, threads, include_family):
    shapes = size_shapes(size)
    n = n_params(shapes)
    rng = np.random.default_rng(0)
    grads = {
        k: jnp.asarray(rng.normal(size=s).astype(np.float32) * 1e-3) for k, s in shapes.items()
    }
    shared = {"jax_params": {k: jnp.zeros(s, jnp.float32) for k, s in shapes.items()}}
    contenders: list[Any] = [StreamStep(n)]
    for name, make in jax_optimizers(include_family).items():
        contenders.append(JaxStep(name, make(), shared["jax_params"], grads))
    torch_version = None
    if with_torch:
        tsteps, torch_version = torch_contenders(shapes, threads)
        contenders += tsteps
    # Warm up and pick the inner repetition count so one timing lasts >= min_time.
    inner = {}
    for c in contenders:
        c.run(shared, 1)
        t0 = time.perf_counter()
        c.run(shared, 1)
        dt = time.perf_counter() - t0
        inner[c.name] = max(1, min(50, math.ceil(min_time / max(dt, 1e-6))))
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(reps):
        order = contenders if r % 2 == 0 else contenders[::-1]
        for c in order:
            k = inner[c.name]
            t0 = time.perf_counter()
            c.run(shared, k)
            times[c.name].append((time.perf_counter() - t0) / k)
    rows = []
    ref = times["optax.adamw"]
    bw = statistics.median(
        [StreamStep.bytes_per_param * n / t / 1e9 for t in times[StreamStep.name]]
    )
    for c in contenders:
        ts = times[c.name]
        med = statistics.median(ts)
        q = np.percentile(ts, [25, 75])
        gbs = c.bytes_per_param * n / med / 1e9
        rows.append({
            "size": size, "n_params": n, "n_leaves": len(shapes), "name": c.name,
            "median_ms": med * 1e3, "iqr_pct": float((q[1] - q[0]) / med * 100),
            "min_ms": min(ts) * 1e3, "times_ms": [t * 1e3 for t in ts],
            "bytes_per_param": c.bytes_per_param, "gb_s": gbs, "pct_bw": gbs / bw * 100,
            "ratio_adamw": statistics.median([a / b for a, b in zip(ts, ref, strict=True)]),
            "compile_s": getattr(c, "compile_s", float("nan")),
        })
    del contenders, shared, grads
    gc.collect()
    return rows, bw, torch_version


def compile_times(shapes, reps=3):
    params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    out = {"adamod": [], "optax.adamw": []}
    for _ in range(reps):
        for name in out:
            tx = ao.adamod(LR, weight_decay=1e-4) if name == "adamod" else optax.adamw(LR)
            state = jax.eval_shape(tx.init, params)

            def step(p, s, g, tx=tx):
                u, s = tx.update(g, s, p)
                return optax.apply_updates(p, u), s

            t0 = time.perf_counter()
            jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()
            out[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in out.items()}


def machine() -> dict:
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
        "optax": optax.__version__, "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def markdown(result) -> str:
    lines = [
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"backend {result['machine']['backend']}, jax {result['machine']['jax']}, "
        f"optax {result['machine']['optax']}, torch {result['torch'] or 'not installed'}; "
        f"load average at start {result['machine']['loadavg_start'][0]:.1f}.",
        f"Command: `{result['command']}` ({result['wall_s']:.0f} s).",
        "",
        "| size | step | median ms | IQR % | B/param | GB/s | % of stream BW | x adamw "
        "| bytes x adamw |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['size']} ({r['n_params'] / 1e6:.1f}M, {r['n_leaves']} leaves) | {r['name']} | "
            f"{r['median_ms']:.2f} | {r['iqr_pct']:.0f} | {r['bytes_per_param']:.0f} | "
            f"{r['gb_s']:.1f} | {r['pct_bw']:.0f} | {r['ratio_adamw']:.2f} | "
            f"{r['bytes_per_param'] / 28:.2f} |"
        )
    lines += ["", "Summary (x adamw: median of per-repetition ratios, interleaved):", ""]
    for size in dict.fromkeys(r["size"] for r in result["rows"]):
        rows = {r["name"]: r for r in result["rows"] if r["size"] == size}
        a = rows["adamod"]
        text = f"- {size}: adamod {a['median_ms']:.1f} ms = {a['ratio_adamw']:.2f}x optax.adamw"
        torch_rows = [r for r in rows.values() if "AdaMod" in r["name"]]
        if torch_rows:
            best = min(torch_rows, key=lambda r: r["median_ms"])
            text += (
                f"; fastest PyTorch AdaMod ({best['name']}) {best['median_ms']:.1f} ms, "
                f"adamod is {best['median_ms'] / a['median_ms']:.2f}x faster"
            )
        lines.append(text + ".")
    if result.get("compile_s"):
        c = result["compile_s"]
        lines += [
            "",
            f"Compile time (trace + lower + compile) of the step, 148-leaf tree, median of 3: "
            f"adamod {c['adamod']:.2f} s, optax.adamw {c['optax.adamw']:.2f} s "
            f"({c['adamod'] / c['optax.adamw']:.2f}x).",
        ]
    return "\n".join(lines) + "\n"


def plot(result, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = list(dict.fromkeys(r["size"] for r in result["rows"]))
    names = list(dict.fromkeys(r["name"] for r in result["rows"]))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(sizes) + 4), 7))
    width = 0.8 / len(names)
    colors = plt.get_cmap("tab20").colors
    for i, name in enumerate(names):
        vals = []
        for s in sizes:
            r = [x for x in result["rows"] if x["size"] == s and x["name"] == name]
            vals.append(r[0]["pct_bw"] if r else 0)
        ax.bar(np.arange(len(sizes)) + i * width, vals, width, label=name,
               color=colors[i % len(colors)])
    ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2)
    ax.set_xticklabels(sizes)
    ax.set_ylabel("% of measured streaming bandwidth (bytes-per-param model)")
    ax.set_title("Train-step throughput, jitted + donated (higher is better)")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repetitions (~1 min)")
    ap.add_argument("--out", default="bench_out", help="output directory")
    ap.add_argument("--sizes", nargs="*", help="e.g. 1e6 1e7 5e7 tree10m gpt2")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-family", action="store_true", help="only adam/adamw/adamod")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    sizes = args.sizes or (["1e6", "1e7"] if args.quick else ["1e6", "1e7", "5e7", "gpt2"])
    reps = args.reps or (5 if args.quick else 7)
    min_time = 0.05 if args.quick else 0.15
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    result = {"machine": machine(), "rows": [], "bandwidth_gb_s": {}, "torch": None,
              "command": "python -m benchmarks.step_time " + " ".join(argv or sys.argv[1:])}
    for size in sizes:
        print(f"size {size} ...", file=sys.stderr, flush=True)
        rows, bw, tv = bench_size(
            size, reps, min_time, not args.no_torch, args.threads, not args.no_family
        )
        result["rows"] += rows
        result["bandwidth_gb_s"][size] = bw
        result["torch"] = result["torch"] or tv
    shapes = gpt2_like_shapes()
    print("compile times ...", file=sys.stderr, flush=True)
    result["compile_s"] = compile_times(shapes, reps=1 if args.quick else 3)
    result["wall_s"] = time.perf_counter() - t_start
    result["machine"]["loadavg_end"] = os.getloadavg()
    md = markdown(result)
    with open(os.path.join(args.out, "step_time.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "step_time.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(result, os.path.join(args.out, "step_time.png"))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
