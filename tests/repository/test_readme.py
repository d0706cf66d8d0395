"""Every ```python block of README.md runs as written (each in a fresh namespace)."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
    code = BLOCKS[index]
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})


def _bash_lines():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    assert ci.endswith("-m pytest"), ci
    assert ci in _bash_lines(), "the last line of .ci/run is not a command in README.md"


def test_quick_start_commands_are_in_the_readme():
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    assert len(commands) == 2
    assert "-m benchmarks.demo" in commands[0] and "-m pytest" in commands[1]


_PLACEHOLDER = re.compile(
    r"\b(?:RESULTS_[A-Z0-9_]+|[A-Z0-9_]+_(?:MIN|SECTION)|DEMO_[A-Z]+|QUICKSTART_[A-Z]+)\b"
)


def test_no_unfilled_placeholders_in_readme_and_notebooks():
    """Drafting placeholders (RESULTS_..., ..._MIN, DEMO_...) are replaced by measured text."""
    paths = [README, *sorted((README.parent / "notebooks").glob("*.py"))]
    left = {p.name: _PLACEHOLDER.findall(p.read_text()) for p in paths}
    assert not any(left.values()), {k: v for k, v in left.items() if v}
