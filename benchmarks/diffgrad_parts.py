"""Where DiffGrad's step time goes on the CPU: the state copy and the friction.

DiffGrad runs at 2.6-2.8x ``optax.adamw`` on this machine although it moves
only 36 bytes per parameter on paper (docs/guides/performance.md). This
measures its parts on the same tree, each as its own jitted, donated program,
interleaved in one process:

* ``optax.adamw`` and ``adamod_optax.diffgrad`` (weight decay 0, as the
  benchmark of step times): the full steps;
* ``copy g into the state``: ``prev_grad = g`` with ``prev_grad`` donated,
  which XLA:CPU compiles to a ``copy`` (8 bytes per parameter); DiffGrad's
  step has two of them, the new gradient into the state and the old one kept
  for the update (``python -m benchmarks.compiled_step --show-copies diffgrad``);
* ``friction in place``: ``x = sigmoid(|x - g|)`` with ``x`` donated (12
  bytes per parameter, as the next one): DiffGrad's coefficient, which its
  update kernel computes once per element;
* ``a = a + 0.5 * g``: the same bytes without the ``exp``.

    python -m benchmarks.diffgrad_parts --out bench_out
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from benchmarks.chunked_probe import optax_step
from benchmarks.report import time_interleaved, write_results
from benchmarks.step_time import machine, size_shapes

LR = 1e-3


def _contenders():
    """name -> (step(state, grads) -> state, init(params) -> state)."""
    def full(tx):
        step = optax_step(tx)
        return (lambda st, g: step(st[0], st[1], g),
                lambda p: (p, tx.init(p)))

    def one(fn):
        return (lambda x, g: [fn(a, b) for a, b in zip(x, g)], lambda p: p)

    return {
        "optax.adamw": full(optax.adamw(LR, weight_decay=1e-4)),
        "diffgrad": full(ao.diffgrad(LR)),
        "copy g into the state": one(lambda a, b: b),
        "friction in place: x = sigmoid(|x - g|)": one(
            lambda a, b: jax.nn.sigmoid(jnp.abs(a - b))),
        "a = a + 0.5 * g": one(lambda a, b: a + 0.5 * b),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="gpt2", help="gpt2 (86M, 148 leaves), tree10m or e.g. 1e7")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    sizes = [math.prod(s) for s in size_shapes(args.size).values()]
    rng = np.random.default_rng(0)
    grads = [jnp.asarray(rng.normal(size=n).astype(np.float32) * 1e-3) for n in sizes]
    contenders = _contenders()
    compiled, states = {}, {}
    for name, (step, init) in contenders.items():
        st = init([jnp.full((n,), 0.5, jnp.float32) for n in sizes])
        c = jax.jit(step, donate_argnums=(0,)).lower(st, grads).compile()
        states[name] = c(st, grads)
        compiled[name] = c
    times, _ = time_interleaved(compiled, states, (grads,), args.reps, args.inner)
    base = times["optax.adamw"]
    rows = []
    for name, ts in times.items():
        text = compiled[name].as_text()
        entry = text[text.index("ENTRY"):]
        rows.append({
            "name": name, "median_ms": statistics.median(ts) * 1e3,
            "ratio_adamw": statistics.median([a / b for a, b in zip(ts, base)]),
            "copies": entry.count(" copy("),
        })
    info = machine()
    info["loadavg_end"] = os.getloadavg()
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']}; load average "
        f"{info['loadavg_start'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end. "
        f"{sum(sizes) / 1e6:.0f}M params in {len(sizes)} float32 leaves, {args.reps} "
        f"interleaved repetitions of {args.inner} steps.",
        "",
        "| program | median ms | x adamw | copies in the compiled program |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['median_ms']:.1f} | {r['ratio_adamw']:.2f} | "
                     f"{r['copies']} |")
    md = "\n".join(lines) + "\n"
    print(md)
    write_results(args.out, "diffgrad_parts", md,
                  {"machine": info, "rows": rows, "args": vars(args)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
