"""Every ```python block of the guides in docs/guides/ runs as written, and its ``# output``
comments (lines right after the code that start with ``# ``) are what it prints; the
warmup/b3 experiment runs (shortened) and its committed results are the ones the guide shows."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
BLOCKS = [
    (path.name, i, code)
    for path in GUIDES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S))
]


def test_guides_exist():
    names = {p.name for p in GUIDES}
    assert {"diagnostics.md", "coming_from_adamw.md"} <= names


@pytest.mark.parametrize(("name", "index", "code"), BLOCKS,
                         ids=[f"{n}[{i}]" for n, i, _ in BLOCKS])
def test_guide_block_runs_and_prints_what_it_says(name, index, code):
    lines = code.rstrip("\n").splitlines()
    expected = []
    while lines and lines[-1].startswith("# "):
        expected.insert(0, lines.pop()[2:])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{name}[python block {index}]", "exec"), {"__name__": "__guide__"})
    if expected and not expected[0].startswith("("):
        assert out.getvalue().strip().splitlines()[-len(expected):] == expected


def test_warmup_b3_results_are_in_the_guide():
    page = (ROOT / "docs" / "guides" / "coming_from_adamw.md").read_text()
    for md in ("warmup_b3.md", "peak_lr_3e-3/warmup_b3.md"):
        table = (ROOT / "docs" / "results" / "warmup_b3" / md).read_text()
        rows = [line for line in table.splitlines() if line.startswith("| adam")]
        assert len(rows) == 5 and all(r in page for r in rows), md
    raw = json.loads((ROOT / "docs" / "results" / "warmup_b3" / "warmup_b3.json").read_text())
    assert raw["machine"]["cpu"] and raw["date"] and raw["seeds"] == [0, 1, 2]


@pytest.mark.slow
def test_warmup_b3_runs(tmp_path):
    from benchmarks import warmup_b3

    results = warmup_b3.main(["--steps", "100", "--seeds", "0", "--out", str(tmp_path)])
    assert len(results["runs"]) == 5
    assert (tmp_path / "warmup_b3.md").read_text().count("| adam") == 5
