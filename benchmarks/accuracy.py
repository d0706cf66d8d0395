"""Measure how closely every optimizer reproduces its reference.

The figures are quoted on the results page (docs/guides/results.md).

Two comparisons, both over 1000 float64 steps of a closed-loop problem, reported as
max |theta_package - theta_reference| / max |theta_reference - theta_0| (per leaf, worst case):

* against the NumPy float64 references of the update rules (``tests/reference.py``), over
  several pytrees, constant and scheduled learning rates, weight decay and masks;
* against golden trajectories of the PyTorch releases (``tests/golden/*.npz``, produced by
  ``tests/golden/generate.py``; torch is not needed here).

Usage: ``python -m benchmarks.accuracy`` (about a minute on 2 CPU cores). Prints Markdown.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # float64, as in the tests

from tests import helpers  # noqa: E402
from tests.golden import compare  # noqa: E402


def main() -> None:
    print("## Against the NumPy float64 references (1000 jitted steps)\n")
    print("| optimizer | configurations | max relative deviation |")
    print("|---|---|---|")
    for algorithm in ("released", "paper"):
        worst = max(
            helpers.run_adamod(tree, steps=1000, jit=True, algorithm=algorithm, **cfg)
            for cfg in helpers.ADAMOD_CONFIGS.values()
            for tree in sorted(helpers.TREES)
        )
        configs = ", ".join(helpers.ADAMOD_CONFIGS)
        print(f"| adamod (algorithm={algorithm!r}) | {configs}; 3 pytrees | {worst:.1e} |")
    for name in helpers.FAMILY_OPTIMIZERS:
        results = []
        for cfg in helpers.FAMILY_CONFIGS.values():
            kw = dict(cfg)
            if name == "diffmod" and "weight_decay" in kw:
                kw["mode"] = "decoupled"
            results.append(helpers.run_family(name, **kw))
        configs = ", ".join(helpers.FAMILY_CONFIGS)
        print(f"| {name} | {configs} | {max(results):.1e} |")

    print("\n## Against the PyTorch releases (golden trajectories, 1000 steps)\n")
    compare.main()


if __name__ == "__main__":
    main()
