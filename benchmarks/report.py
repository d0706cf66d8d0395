"""Result tables shared by the demo and the convergence tasks."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

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
