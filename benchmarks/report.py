"""Result tables and timing helpers shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def summarise(primary: Sequence[float], secondary: Sequence[float]) -> dict[str, float]:
    """Median, mean and std (ddof=0) of a per-seed metric, and of a second one."""
    p, s = np.asarray(primary, np.float64), np.asarray(secondary, np.float64)
    return {"median": float(np.median(p)), "mean": float(p.mean()), "std": float(p.std()),
            "median2": float(np.median(s)), "mean2": float(s.mean()), "std2": float(s.std()),
            "n": int(p.size)}


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table of the summary (median, mean +- std over seeds)."""
    if results["task"] == "digits":
        head = ("| optimizer | test accuracy: median | mean +- std | test loss: median "
                "| mean +- std | seeds |")
        fmt = "| {name} | {median:.4f} | {mean:.4f} +- {std:.4f} | {median2:.4f} | " \
              "{mean2:.4f} +- {std2:.4f} | {n} |"
    else:
        head = ("| optimizer | final val loss: median | mean +- std | train loss, last 10% of "
                "steps: median | mean +- std | seeds |")
        fmt = "| {name} | {median:.3f} | {mean:.3f} +- {std:.3f} | {median2:.3f} | " \
              "{mean2:.3f} +- {std2:.3f} | {n} |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, s in results["summary"].items():
        lines.append(fmt.format(name=name, **s))
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_interleaved(
    steps: dict[str, Callable[..., Any]], states: dict[str, Any], args: Sequence[Any],
    reps: int, inner: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per step and cores busy of donated steps, run round-robin.

    Each repetition runs ``inner`` steps ``state = steps[name](state, *args)`` of
    every contender, in reverse order every other repetition, so a noisy neighbour
    slows them alike. ``states`` is updated in place (the donated buffers move on).
    "Cores busy" is the process's CPU time over wall time during the steps.
    """
    times = {k: [] for k in steps}
    busy = {k: [] for k in steps}
    for r in range(reps):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            st = states[name]
            jax.block_until_ready(st)
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(inner):
                st = steps[name](st, *args)
            jax.block_until_ready(st)
            wall = time.perf_counter() - t0
            times[name].append(wall / inner)
            busy[name].append((time.process_time() - c0) / wall)
            states[name] = st
    return times, busy


def write_results(out: str | None, stem: str, md: str, payload: dict) -> None:
    """Writes ``stem.md`` and ``stem.json`` into ``out`` (nothing when ``out`` is None)."""
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(payload, f, indent=1)
