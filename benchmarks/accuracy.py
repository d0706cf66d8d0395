"""Measure how closely every optimizer reproduces its reference, as reported in README.

Two comparisons, both over 1000 float64 steps of a closed-loop problem, reported as
max |theta_package - theta_reference| / max |theta_reference - theta_0| (per leaf, worst case):

* against the NumPy float64 references of the update rules (``tests/reference.py``), over
  several pytrees, constant and scheduled learning rates, weight decay and masks;
* against golden trajectories of the PyTorch releases (``tests/golden/*.npz``, produced by
  ``tests/golden/generate.py``; torch is not needed here).

Usage: ``python benchmarks/accuracy.py`` (about a minute on 2 CPU cores). Prints Markdown.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import conftest  # noqa: E402,F401  (float64 on, as in the tests)
import test_adamod  # noqa: E402
import test_family  # noqa: E402
import test_golden  # noqa: E402


def main() -> None:
    print("## Against the NumPy float64 references (1000 jitted steps)\n")
    print("| optimizer | configurations | max relative deviation |")
    print("|---|---|---|")
    for algorithm in ("released", "paper"):
        worst = max(
            test_adamod._run(tree, steps=1000, jit=True, algorithm=algorithm, **cfg)
            for cfg in test_adamod.CONFIGS.values()
            for tree in sorted(test_adamod.TREES)
        )
        configs = ", ".join(test_adamod.CONFIGS)
        print(f"| adamod (algorithm={algorithm!r}) | {configs}; 3 pytrees | {worst:.1e} |")
    for name in test_family.OPTIMIZERS:
        results = []
        for cfg in test_family.CONFIGS.values():
            kw = dict(cfg)
            if name == "diffmod" and "weight_decay" in kw:
                kw["mode"] = "decoupled"
            results.append(test_family._run(name, **kw))
        configs = ", ".join(test_family.CONFIGS)
        print(f"| {name} | {configs} | {max(results):.1e} |")

    print("\n## Against the PyTorch releases (golden trajectories, 1000 steps)\n")
    test_golden.main()


if __name__ == "__main__":
    main()
