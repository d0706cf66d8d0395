"""Convergence experiments behind the notebooks and the results page (docs/guides/results.md).

A thin dispatcher: each task lives in its own module next to this file and is
imported only when asked for.

  python -m benchmarks.convergence fmnist      [--smoke] [--epochs N] [--seeds K] [--out DIR]
  python -m benchmarks.convergence fmnist-b3   [--smoke] [--epochs N] [--seeds K] [--out DIR]
  python -m benchmarks.convergence fmnist-family [--smoke] [--epochs N] [--seeds K] [--out DIR]

  python -m benchmarks.convergence transformer [--size laptop|full] [--seeds 0,1,2] [--out DIR]

``python -m benchmarks.convergence TASK --help`` lists a task's options.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# task name -> (module in benchmarks/, function taking argv)
TASKS = {
    "fmnist": ("convergence_fmnist", "main_lr"),
    "fmnist-b3": ("convergence_fmnist", "main_b3"),
    "fmnist-family": ("convergence_fmnist", "main_family"),
    "transformer": ("convergence_transformer", "main"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in TASKS:
        print(__doc__.strip())
        print("\ntasks: " + ", ".join(TASKS))
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module, fn = TASKS[argv[0]]
    getattr(importlib.import_module(f"benchmarks.{module}"), fn)(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
