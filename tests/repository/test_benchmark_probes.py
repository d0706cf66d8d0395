"""The CPU probes quoted on the performance page run, at a tiny size.

``docs/guides/performance.md`` quotes ``benchmarks.chunked_probe`` and
``benchmarks.diffgrad_parts``; here each runs end to end on a small problem
(timings mean nothing at this size and are not checked), and the chunked
programs must keep the package's bits, which the page states.
"""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, tmp_path, *args):
    out = tmp_path / module
    subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--reps", "1", "--inner", "1",
         "--out", str(out), *args],
        cwd=REPO, check=True, timeout=600, capture_output=True,
    )
    with open(out / f"{module}.json") as f:
        return json.load(f)["rows"]


def test_chunked_probe_keeps_the_package_bits(tmp_path):
    # One leaf of 120000 elements: a loop over 29 chunks of 4096, then a 1216-element tail.
    rows = _run("chunked_probe", tmp_path, "--size", "1.2e5", "--chunk", "4096", "--groups", "2")
    names = [r["name"] for r in rows]
    assert names == ["optax.adamw", "adamod (package)", "chunked state", "chunked full step",
                     "chunked full step, <= 2 leaves per loop", "stream p += 0.5 g",
                     "stream p += 0.5 g, chunked"]
    for r in rows[1:5]:
        assert r["bit_identical_to_package"] is True, r["name"]
    assert [r["while_loops"] >= 1 for r in rows] == [False] * 2 + [True] * 3 + [False, True]


def test_diffgrad_parts_runs(tmp_path):
    rows = {r["name"]: r for r in _run("diffgrad_parts", tmp_path, "--size", "1e5")}
    assert set(rows) == {"optax.adamw", "diffgrad", "copy g into the state",
                         "friction in place: x = sigmoid(|x - g|)", "a = a + 0.5 * g"}
    # The page's claim: the gradient goes into the state by a copy, and DiffGrad's
    # step holds two array copies (plus the scalar record's), the friction none.
    assert rows["copy g into the state"]["copies"] == 1
    assert rows["diffgrad"]["copies"] >= 2
    assert rows["friction in place: x = sigmoid(|x - g|)"]["copies"] == 0
