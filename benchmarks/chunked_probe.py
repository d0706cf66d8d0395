"""Probe: AdaMod's state update in cache-sized chunks, against the package and adamw.

Not part of the package: this measures whether a chunked program would pay on
XLA:CPU (docs/guides/performance.md, "Why not a single pass on the CPU").
Leaves of the same size are grouped; each group is one ``fori_loop`` whose
body updates one ``CHUNK``-element slice of every leaf of the group with
in-place ``dynamic_update_slice``s on the donated buffers (the slice of ``v``
is read back at ``min(off, n - chunk)`` so that XLA does not prove it equal to
the value just written and copy the whole array). Leaves smaller than four
chunks, and the remainder of a leaf, take the plain program.

Variants (AdaMod, released form, float32, lr 1e-3, weight decay 1e-4):

* ``chunked state``: the loop updates ``m``, ``v``, ``s``; the update is then
  computed outside the loop and fused into the parameter update, as an optax
  transformation must (``optax.apply_updates`` runs after it): 48 bytes per
  parameter.
* ``chunked full step``: the loop also writes the params (36 bytes). Not
  expressible as an optax transformation; the upper bound of the idea.

* ``stream p += 0.5 g``, plain and in the same chunk loops: the bandwidth
  each form reaches with the simplest kernel (12 bytes per parameter).
* ``--groups K ...``: the full step again with at most ``K`` same-size leaves
  per loop (XLA:CPU runs each in-place slice update on one thread; two cores
  work only when enough independent leaves share a loop body).

Every variant is checked bit for bit against ``adamod_optax.adamod`` (3 steps)
before timing. All contenders run interleaved in one process; medians, the
median of per-repetition ratios to optax.adamw, and "cores busy" (process CPU
time over wall time while the steps run: 2.0 = both cores of this machine).

    python -m benchmarks.chunked_probe --groups 2 4 --out bench_out
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamod_optax as ao
from benchmarks.report import time_interleaved, write_results
from benchmarks.step_time import gpt2_like_shapes, machine

LR, B1, B2, B3, EPS, WD = 1e-3, 0.9, 0.999, 0.999, 1e-8, 1e-4


def _ema(decay, old, new):
    decay = jnp.asarray(decay, jnp.float32)
    return decay * old + (1 - decay) * new


def make_step(sizes, chunk, full, group=None):
    """A donated step ``(params, state, grads)`` on lists of flat float32 leaves.

    ``group``: at most this many same-size leaves per loop (default: all of them).
    """

    def groups():
        by_size, plain = {}, []
        for i, n in enumerate(sizes):
            if n < 4 * chunk:
                plain.append(i)
            else:
                by_size.setdefault(n, []).append(i)
        loops = []
        for n, leaves in by_size.items():
            k = group or len(leaves)
            loops.extend((n, leaves[j:j + k]) for j in range(0, len(leaves), k))
        return loops, plain

    def step(p, st, g):
        count, m, v, s, wd_count = st
        count_inc = optax.safe_increment(count)
        t = count_inc.astype(jnp.float32)
        bc1 = 1 - jnp.float32(B1) ** t
        bc2 = 1 - jnp.float32(B2) ** t
        step_size = jnp.float32(LR) * jnp.sqrt(bc2) / bc1
        coef = jnp.float32(WD) * jnp.float32(LR)

        def rate(vv):
            return step_size / (jnp.sqrt(vv) + jnp.float32(EPS))

        def update(pp, mm, vv, ss):
            return pp + (-(jnp.minimum(rate(vv), ss) * mm + coef * pp))

        def piece(buf, gi, off, n, length, dynamic):
            mb, vb, sb = buf[:3]
            if dynamic:
                take = lambda x, o: jax.lax.dynamic_slice(x, (o,), (length,))  # noqa: E731
                back = jnp.minimum(off, n - length)
            else:
                take = lambda x, o: x[o:o + length]  # noqa: E731
                back = off
            gc, mc, vc, sc = take(gi, off), take(mb, off), take(vb, off), take(sb, off)
            mb = jax.lax.dynamic_update_slice(mb, _ema(B1, mc, gc), (off,))
            vb = jax.lax.dynamic_update_slice(vb, _ema(B2, vc, gc * gc), (off,))
            vn = jax.lax.dynamic_slice(vb, (back,), (length,))
            sb = jax.lax.dynamic_update_slice(sb, _ema(B3, sc, rate(vn)), (off,))
            if not full:
                return mb, vb, sb
            mn = jax.lax.dynamic_slice(mb, (back,), (length,))
            sn = jax.lax.dynamic_slice(sb, (back,), (length,))
            vn2 = jax.lax.dynamic_slice(vb, (jnp.maximum(back, 0),), (length,))
            pc = take(buf[3], off)
            pb = jax.lax.dynamic_update_slice(buf[3], update(pc, mn, vn2, sn), (off,))
            return mb, vb, sb, pb

        bufs = {i: (m[i], v[i], s[i]) + ((p[i],) if full else ()) for i in range(len(g))}
        loops, plain = groups()
        for n, leaves in loops:
            iters = n // chunk

            def body(k, carry, leaves=leaves, n=n):
                out = []
                for leaf, buf in zip(leaves, carry):
                    out.append(piece(buf, g[leaf], k * chunk, n, chunk, True))
                return tuple(out)

            out = jax.lax.fori_loop(0, iters, body, tuple(bufs[i] for i in leaves))
            bufs.update(zip(leaves, out))
            if iters * chunk < n:
                for leaf in leaves:
                    bufs[leaf] = piece(bufs[leaf], g[leaf], iters * chunk, n, n - iters * chunk,
                                       False)
        new_p = []
        for i in range(len(g)):
            if i in plain:
                mn = _ema(B1, m[i], g[i])
                vn = _ema(B2, v[i], g[i] * g[i])
                sn = _ema(B3, s[i], rate(vn))
                bufs[i] = (mn, vn, sn) + ((update(p[i], mn, jax.lax.optimization_barrier(vn),
                                                  sn),) if full else ())
            mb, vb, sb = bufs[i][:3]
            if full:
                new_p.append(bufs[i][3])
            else:
                new_p.append(update(p[i], mb, jax.lax.optimization_barrier(vb), sb))
        new_st = (count_inc, [b[0] for b in bufs.values()], [b[1] for b in bufs.values()],
                  [b[2] for b in bufs.values()], optax.safe_increment(wd_count))
        return new_p, new_st

    return step


def make_stream(sizes, chunk, chunked):
    """``p = p + 0.5 g`` (12 bytes per parameter), plain or in the same chunk loops.

    The bandwidth a chunk loop of in-place slice updates reaches on this machine,
    against the same kernel over whole leaves.
    """

    def step(p, st, g):
        p = list(p)
        by_size = {}
        for i, n in enumerate(sizes):
            if chunked and n >= 4 * chunk:
                by_size.setdefault(n, []).append(i)
            else:
                p[i] = p[i] + 0.5 * g[i]
        for n, leaves in by_size.items():
            iters = n // chunk

            def body(k, carry, leaves=leaves):
                off = k * chunk
                return tuple(
                    jax.lax.dynamic_update_slice(
                        x, jax.lax.dynamic_slice(x, (off,), (chunk,))
                        + 0.5 * jax.lax.dynamic_slice(g[i], (off,), (chunk,)), (off,))
                    for i, x in zip(leaves, carry)
                )

            out = jax.lax.fori_loop(0, iters, body, tuple(p[i] for i in leaves))
            for i, x in zip(leaves, out):
                tail = slice(iters * chunk, n)
                p[i] = x.at[tail].set(x[tail] + 0.5 * g[i][tail]) if iters * chunk < n else x
        return p, st

    return step


# Bytes moved from and to memory per parameter, as compiled (each kernel streams
# its inputs and its output once; a chunk's re-reads hit the cache).
BYTES = {"optax.adamw": 40, "adamod (package)": 56, "chunked state": 48,
         "chunked full step": 36, "stream": 12}


def init(params):
    zeros = lambda: [jnp.zeros_like(x) for x in params]  # noqa: E731
    return (jnp.zeros([], jnp.int32), zeros(), zeros(), zeros(), jnp.zeros([], jnp.int32))


def optax_step(tx):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="gpt2", help="gpt2 (86M, 148 leaves) or e.g. 1e7")
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--groups", type=int, nargs="*", default=[],
                    help="also run the full step with at most this many leaves per loop")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    shapes = gpt2_like_shapes() if args.size == "gpt2" else {"w": (int(float(args.size)),)}
    sizes = [math.prod(s) for s in shapes.values()]
    rng = np.random.default_rng(0)
    grads = [jnp.asarray(rng.normal(size=n).astype(np.float32) * 1e-3) for n in sizes]
    zeros = lambda: [jnp.zeros((n,), jnp.float32) for n in sizes]  # noqa: E731
    adamw, adamod = optax.adamw(LR, weight_decay=WD), ao.adamod(LR, weight_decay=WD)
    contenders = {
        "optax.adamw": (optax_step(adamw), adamw.init),
        "adamod (package)": (optax_step(adamod), adamod.init),
        "chunked state": (make_step(sizes, args.chunk, False), init),
        "chunked full step": (make_step(sizes, args.chunk, True), init),
    }
    for k in args.groups:
        contenders[f"chunked full step, <= {k} leaves per loop"] = (
            make_step(sizes, args.chunk, True, k), init)
    contenders["stream p += 0.5 g"] = (make_stream(sizes, args.chunk, False), lambda p: ())
    contenders["stream p += 0.5 g, chunked"] = (make_stream(sizes, args.chunk, True),
                                                lambda p: ())
    compiled, compile_s, runs = {}, {}, {}
    for name, (step, init_fn) in contenders.items():
        p = zeros()
        t0 = time.perf_counter()
        compiled[name] = jax.jit(step, donate_argnums=(0, 1)).lower(p, init_fn(p), grads).compile()
        compile_s[name] = time.perf_counter() - t0
        runs[name] = (p, init_fn(p))
    # Bit identity against the package over 3 steps, from the same start.
    ref = None
    identical = {}
    for name in [n for n in contenders if n.startswith(("adamod", "chunked"))]:
        p = [jnp.full((n,), 0.5, jnp.float32) for n in sizes]
        st = contenders[name][1](p)
        for k in range(3):
            p, st = compiled[name](p, st, [x * (k + 1) for x in grads])
        p = [np.asarray(x) for x in p]
        ref = ref or p
        identical[name] = all(a.tobytes() == b.tobytes() for a, b in zip(p, ref))
    times, cpu = time_interleaved(
        {name: (lambda s, g, f=f: f(*s, g)) for name, f in compiled.items()},
        runs, (grads,), args.reps, args.inner)
    base = times["optax.adamw"]
    rows = []
    for name, ts in times.items():
        text = compiled[name].as_text()
        nbytes = next(b for k, b in BYTES.items() if name.startswith(k))
        rows.append({
            "name": name, "median_ms": statistics.median(ts) * 1e3, "bytes_per_param": nbytes,
            "gb_per_s": nbytes * sum(sizes) / statistics.median(ts) / 1e9,
            "ratio_adamw": statistics.median([a / b for a, b in zip(ts, base)]),
            "compile_s": compile_s[name], "cores_busy": statistics.median(cpu[name]),
            "while_loops": text.count(" while("),
            "temp_bytes": compiled[name].memory_analysis().temp_size_in_bytes,
            "bit_identical_to_package": identical.get(name),
        })
    info = machine()
    info["loadavg_end"] = os.getloadavg()
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']}; load average "
        f"{info['loadavg_start'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end. "
        f"Size {args.size} ({sum(sizes) / 1e6:.0f}M params, {len(sizes)} leaves), chunk "
        f"{args.chunk}, {args.reps} interleaved repetitions of {args.inner} steps.",
        "",
        "| step | median ms | x adamw | B/param | GB/s | cores busy | compile s | while loops "
        "| temp bytes | same bits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['median_ms']:.1f} | {r['ratio_adamw']:.2f} | "
            f"{r['bytes_per_param']} | {r['gb_per_s']:.1f} | {r['cores_busy']:.2f} | "
            f"{r['compile_s']:.2f} | {r['while_loops']} | "
            f"{r['temp_bytes']} | "
            f"{'' if r['bit_identical_to_package'] is None else r['bit_identical_to_package']} |"
        )
    md = "\n".join(lines) + "\n"
    print(md)
    write_results(args.out, "chunked_probe", md,
                  {"machine": info, "rows": rows, "args": vars(args)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
