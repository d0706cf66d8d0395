"""Train-step throughput on an accelerator, against its streaming bandwidth.

Interleaved, like ``step_time.py``: an in-place streaming kernel
``a = a + s * c`` (donated; 8 bytes per element) measures the attainable
memory bandwidth, then optax.adam/adamw, adamod per leaf, adamod wrapped in
``optax.flatten`` (one concatenated leaf), adamod with the CPU-oriented rate
recomputation forced on, and adamod with bfloat16 moments. Sizes: 1e8 flat
and GPT-2 small's 148-leaf tree with its full vocabulary (124M params).

Usage (on a machine with a GPU)::

    python -m benchmarks.gpu --out bench_gpu
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from benchmarks import step_time as st

LR = 1e-3


def contenders():
    bf16 = jnp.bfloat16
    return {
        "optax.adam": lambda: optax.adam(LR),
        "optax.adamw": lambda: optax.adamw(LR, weight_decay=1e-4),
        "adamod": lambda: ao.adamod(LR, weight_decay=1e-4),
        "optax.flatten(adamod)": lambda: optax.flatten(ao.adamod(LR, weight_decay=1e-4)),
        "optax.flatten(optax.adamw)": lambda: optax.flatten(optax.adamw(LR)),
        "adamod (rates recomputed)": lambda: ao.adamod(
            LR, weight_decay=1e-4, fast_path="recompute"
        ),
        "adamod bf16 mu/nu": lambda: ao.adamod(
            LR, weight_decay=1e-4, mu_dtype=bf16, nu_dtype=bf16
        ),
    }


class TreeStreamStep:
    """``a = a + s * c`` on every leaf of the tree, donated: the bandwidth a
    per-leaf step can reach (it pays the same per-leaf kernel launches)."""

    name = "stream a+=s*c per leaf"
    bytes_per_param = 8.0

    def __init__(self, shapes):
        self.a = {k: jnp.zeros(s, jnp.float32) for k, s in shapes.items()}
        f = lambda a, s, c: jax.tree.map(lambda x: x + s * c, a)  # noqa: E731
        self.s, self.c = jnp.float32(1e-6), jnp.float32(0.5)
        self.fn = jax.jit(f, donate_argnums=0).lower(self.a, self.s, self.c).compile()

    def run(self, shared, k):
        a = self.a
        for _ in range(k):
            a = self.fn(a, self.s, self.c)
        jax.block_until_ready(a)
        self.a = a


def n_kernels(compiled) -> int:
    txt = compiled.as_text()
    entry = txt[txt.index("ENTRY"):]
    return len(re.findall(r"= \S+ (fusion|custom-call|copy)\(", entry))


def bench(size, reps, min_time, dump_dir=None):
    shapes = (
        st.gpt2_like_shapes(vocab=50257) if size == "gpt2-124M" else {"w": (int(float(size)),)}
    )
    n = st.n_params(shapes)
    key = jax.random.PRNGKey(0)
    grads = {
        k: jax.random.normal(jax.random.fold_in(key, i), s, jnp.float32) * 1e-3
        for i, (k, s) in enumerate(shapes.items())
    }
    shared = {"jax_params": {k: jnp.zeros(s, jnp.float32) for k, s in shapes.items()}}
    cs = [st.StreamStep(n)]
    if len(shapes) > 1:
        cs.append(TreeStreamStep(shapes))
    kernels = {}
    for name, make in contenders().items():
        c = st.JaxStep(name, make(), shared["jax_params"], grads)
        kernels[name] = n_kernels(c.fn)
        if dump_dir and name in ("adamod", "optax.flatten(adamod)"):
            fname = re.sub(r"\W+", "_", f"hlo_{size}_{name}") + ".txt"
            with open(os.path.join(dump_dir, fname), "w") as f:
                f.write(c.fn.as_text())
        cs.append(c)
    inner = {}
    for c in cs:
        c.run(shared, 2)
        t0 = time.perf_counter()
        c.run(shared, 3)
        dt = (time.perf_counter() - t0) / 3
        inner[c.name] = max(1, min(200, int(np.ceil(min_time / max(dt, 1e-6)))))
    times = {c.name: [] for c in cs}
    for r in range(reps):
        for c in (cs if r % 2 == 0 else cs[::-1]):
            k = inner[c.name]
            t0 = time.perf_counter()
            c.run(shared, k)
            times[c.name].append((time.perf_counter() - t0) / k)
    bw = statistics.median([8 * n / t / 1e9 for t in times[cs[0].name]])
    rows = []
    for c in cs:
        med = statistics.median(times[c.name])
        gbs = c.bytes_per_param * n / med / 1e9
        rows.append({
            "size": size, "n_params": n, "n_leaves": len(shapes), "name": c.name,
            "median_ms": med * 1e3, "min_ms": min(times[c.name]) * 1e3,
            "bytes_per_param": c.bytes_per_param, "gb_s": gbs, "pct_bw": gbs / bw * 100,
            "ratio_adamw": statistics.median(
                [a / b for a, b in zip(times[c.name], times["optax.adamw"], strict=True)]
            ),
            "kernels": kernels.get(c.name),
        })
    return rows, bw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_gpu")
    ap.add_argument("--sizes", nargs="*", default=["1e7", "1e8", "gpt2-124M"],
                    help="flat sizes and/or gpt2-124M (148 leaves)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--dump-hlo", action="store_true", help="write adamod's compiled HLO")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    dev = jax.devices()[0]
    result = {"device": getattr(dev, "device_kind", str(dev)), "backend": jax.default_backend(),
              "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "jax": jax.__version__, "optax": optax.__version__, "rows": [], "stream_gb_s": {}}
    for size in args.sizes:
        rows, bw = bench(size, args.reps, 0.05, args.out if args.dump_hlo else None)
        result["rows"] += rows
        result["stream_gb_s"][size] = bw
        print(f"{size}: stream {bw:.0f} GB/s", file=sys.stderr, flush=True)
    lines = [
        f"Device: {result['device']} (backend {result['backend']}, jax {result['jax']}, "
        f"XLA_FLAGS={result['xla_flags']!r}).",
        "",
        "| size | step | top-level ops | median ms | B/param | GB/s | % of stream BW | x adamw |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['size']} ({r['n_params'] / 1e6:.0f}M, {r['n_leaves']} leaves) | {r['name']} | "
            f"{r['kernels'] if r['kernels'] is not None else ''} | {r['median_ms']:.3f} | "
            f"{r['bytes_per_param']:.0f} | {r['gb_s']:.0f} | {r['pct_bw']:.0f} | "
            f"{r['ratio_adamw']:.2f} |"
        )
    md = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "gpu.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "gpu.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
