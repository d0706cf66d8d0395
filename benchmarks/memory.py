"""Peak memory of a train step, against the payload (params + grads + state).

Each case runs in a fresh Python process: it compiles the jitted step from
abstract shapes first (so compiler memory is not counted), records its
resident set size (RSS) as the baseline, resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``), then allocates params, grads and optimizer state
and runs 10 steps. Reported: peak RSS above the baseline, and its excess over
the payload. A step that writes a per-step temporary (or is not donated)
shows up as an excess of one or more arrays.

Also prints the optimizer state's bytes per parameter for each dtype option.

Usage::

    python -m benchmarks.memory --out bench_out           # 5e7 params
    python -m benchmarks.memory --quick --out bench_quick # 1e7 params
    python -m benchmarks.memory --tree --out bench_tree   # the 86M, 148-leaf GPT-2-like tree

Linux only (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {
    "optax.adamw": "optax.adamw(1e-3)",
    "adamod": "ao.adamod(1e-3)",
    "adamod bf16 mu/nu": "ao.adamod(1e-3, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)",
    "adamod (eta materialised)": "ao.adamod(1e-3, fast_path='plain')",
    "adamod (not donated)": "ao.adamod(1e-3)",
}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(case: str, n: int, tree: bool = False) -> dict:
    """Runs in the fresh process."""
    import jax
    import jax.numpy as jnp
    import optax

    import adamod_optax as ao
    tx = eval(CASES[case], {"ao": ao, "optax": optax, "jnp": jnp})
    donate = () if case == "adamod (not donated)" else (0, 1)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    if tree:
        from benchmarks.step_time import gpt2_like_shapes

        shapes = gpt2_like_shapes()
        n = sum(math.prod(s) for s in shapes.values())
    else:
        shapes = {"w": (n,)}
    abstract = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    abstract_state = jax.eval_shape(tx.init, abstract)
    compiled = (
        jax.jit(step, donate_argnums=donate).lower(abstract, abstract_state, abstract).compile()
    )
    init = jax.jit(tx.init).lower(abstract).compile()

    def full(value):
        return {k: jnp.full(s, value, jnp.float32) for k, s in shapes.items()}

    fill = jax.jit(lambda: full(0.5)).lower().compile()
    grad_fill = jax.jit(lambda: full(1e-3)).lower().compile()
    base_kb = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    params, grads = fill(), grad_fill()
    state = init(params)
    jax.block_until_ready((params, grads, state))
    after_init_kb = _status_kb("VmRSS")
    for _ in range(10):
        params, state = compiled(params, state, grads)
    jax.block_until_ready((params, state))
    peak_kb = _status_kb("VmHWM")
    payload = sum(x.nbytes for x in jax.tree.leaves((params, grads, state)))
    mib = 1024 * 1024
    return {
        "case": case, "n_params": n, "payload_mib": payload / mib,
        "after_init_mib": (after_init_kb - base_kb) * 1024 / mib,
        "peak_mib": (peak_kb - base_kb) * 1024 / mib,
        "excess_pct": ((peak_kb - base_kb) * 1024 / payload - 1) * 100,
        "temp_bytes_compiled": compiled.memory_analysis().temp_size_in_bytes,
    }


def state_bytes_table() -> list[dict]:
    import jax
    import jax.numpy as jnp
    import optax

    import adamod_optax as ao

    p = {"w": jax.ShapeDtypeStruct((1000,), jnp.float32)}
    bf16 = jnp.bfloat16
    options = {
        "adamod float32 state": ao.adamod(1e-3),
        "adamod mu_dtype=bfloat16": ao.adamod(1e-3, mu_dtype=bf16),
        "adamod mu_dtype=nu_dtype=bfloat16": ao.adamod(1e-3, mu_dtype=bf16, nu_dtype=bf16),
        "optax.adamw float32 state": optax.adamw(1e-3),
        "optax.adamw mu_dtype=bfloat16": optax.adamw(1e-3, mu_dtype=bf16),
    }
    for name in ("adabound", "amsbound", "diffgrad", "diffmod"):
        fn = getattr(ao, name, None)
        if fn is not None:
            options[f"{name} float32 state"] = fn(1e-3)
    rows = []
    for name, tx in options.items():
        st = jax.eval_shape(tx.init, p)
        b = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(st) if len(x.shape) > 0)
        rows.append({"option": name, "state_bytes_per_param": b / 1000})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=float, help="params (default 5e7, quick 1e7)")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--tree", action="store_true", help="the 86M, 148-leaf GPT-2-like tree")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    n = int(args.n or (1e7 if args.quick else 5e7))
    if args.child:
        print(json.dumps(child(args.child, n, args.tree)))
        return 0
    rows = []
    for case in CASES:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--child", case, "--n", str(n)]
            + (["--tree"] if args.tree else []),
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    sb = state_bytes_table()
    lines = [
        f"Peak RSS above the post-compile baseline, {rows[0]['n_params'] / 1e6:.0f}M float32 "
        f"params{' (148-leaf GPT-2-like tree)' if args.tree else ''}, 10 steps "
        f"(`python -m benchmarks.memory{' --quick' if args.quick else ''}"
        f"{' --tree' if args.tree else ''}`):",
        "",
        "| step | payload MiB | after init MiB | peak MiB | peak over payload | XLA temp bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['payload_mib']:.0f} | {r['after_init_mib']:.0f} | "
            f"{r['peak_mib']:.0f} | {r['excess_pct']:+.1f}% | {r['temp_bytes_compiled']} |"
        )
    lines += ["", "| state option | bytes per param |", "|---|---:|"]
    lines += [f"| {r['option']} | {r['state_bytes_per_param']:.0f} |" for r in sb]
    md = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "memory.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "memory.json"), "w") as f:
        json.dump({"rows": rows, "state_bytes": sb}, f, indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
