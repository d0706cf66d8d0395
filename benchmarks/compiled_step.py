"""What XLA compiles a donated train step into: kernels, copies and temporaries.

The evidence behind docs/guides/performance.md, read from the optimized HLO
(``jax.jit(step, donate_argnums=(0, 1)).lower(...).compile().as_text()``) and
the compiler's memory analysis, not from timings. For every optimizer and
``fast_path`` it prints the number of loop fusions, ``copy`` instructions and
while loops in the entry computation, and the temporary buffer size in units
of one parameter array (a kept fast path has 0; a materialised rate array
costs 1 per leaf). Kernels and copies are counted when their output has the
size of a leaf (scalars and the small hyperparameter record are left out).
``--show-copies`` prints the copy instructions themselves (DiffGrad's
previous gradient).

    python -m benchmarks.compiled_step --out bench_out
    python -m benchmarks.compiled_step --show-copies diffgrad

Writes ``compiled_step.md`` when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import os
import re

import jax
import jax.numpy as jnp
import optax

import adamod_optax as ao

N = 1 << 20  # elements per leaf
LEAVES = 2


def optimizers():
    """name -> factory(fast_path) of the transformation."""
    bound = ao.chain_bounds(
        ao.clip_by_dynamic_bound(1e-3, upper=False), ao.scale_by_momental_bound()
    )

    def core(rate_transform):
        return lambda fp: optax.chain(
            ao.scale_by_bounded_adam(1e-3, rate_transform=rate_transform, fast_path=fp),
            optax.scale(-1.0),
        )

    return {
        "adamod": lambda fp: ao.adamod(1e-3, weight_decay=1e-4, fast_path=fp),
        "adabound": lambda fp: ao.adabound(1e-3, fast_path=fp),
        "amsbound": lambda fp: ao.amsbound(1e-3, fast_path=fp),
        "diffgrad": lambda fp: ao.diffgrad(1e-3, fast_path=fp),
        "diffmod": lambda fp: ao.diffmod(1e-3, fast_path=fp),
        "core + chain_bounds": core(bound),
        "core + optax.chain of bounds": core(
            optax.chain(ao.clip_by_dynamic_bound(1e-3, upper=False), ao.scale_by_momental_bound())
        ),
        "optax.masked(adamod)": lambda fp: optax.masked(
            ao.adamod(1e-3, fast_path=fp), {f"w{i}": True for i in range(LEAVES)}
        ),
        "inject_hyperparams(adamod)": lambda fp: optax.inject_hyperparams(ao.adamod)(
            learning_rate=1e-3, fast_path=fp
        ),
        "optax.MultiSteps(adamod)": lambda fp: optax.MultiSteps(
            ao.adamod(1e-3, fast_path=fp), 4
        ),
    }


def compile_step(tx, n=N, leaves=LEAVES):
    params = {f"w{i}": jax.ShapeDtypeStruct((n,), jnp.float32) for i in range(leaves)}

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = jax.eval_shape(tx.init, params)
    return jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()


def entry(text: str) -> str:
    return text[text.index("\nENTRY"):]


def summary(compiled, n=N) -> dict:
    text = entry(compiled.as_text())
    stats = compiled.memory_analysis()
    leaf = rf"= f\w+\[{n}\]\S* "  # an array the size of a leaf
    return {
        "fusions": len(re.findall(leaf + r"fusion\(", text)),
        "copies": len(re.findall(leaf + r"copy\(", text)),
        "while": text.count(" while("),
        "temp_arrays": None if stats is None else stats.temp_size_in_bytes / (n * 4),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="directory for compiled_step.md")
    ap.add_argument("--show-copies", metavar="NAME", help="print the copies of one optimizer")
    args = ap.parse_args(argv)
    opts = optimizers()
    if args.show_copies:
        text = entry(compile_step(opts[args.show_copies]("auto")).as_text())
        for line in text.splitlines():
            if re.search(r" (copy|fusion)\(", line) and "[" in line.split("=")[1][:20]:
                print(re.sub(r", metadata=.*", "", line.strip()))
        return 0
    lines = [
        f"Donated step (`update` + `apply_updates`), {LEAVES} float32 leaves of {N} elements, "
        f"backend {jax.default_backend()}, jax {jax.__version__}. Array-sized kernels (loop "
        "fusions), copies and while loops in the optimized HLO; temporaries in units of one "
        "leaf (`compiled.memory_analysis().temp_size_in_bytes`).",
        "",
        "| optimizer | fast_path | fusions | copies | while loops | temporary arrays |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, make in opts.items():
        for fp in ("plain", "auto"):
            s = summary(compile_step(make(fp)))
            lines.append(
                f"| {name} | {fp} | {s['fusions']} | {s['copies']} | {s['while']} | "
                f"{s['temp_arrays']:.2f} |"
            )
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "compiled_step.md"), "w") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
