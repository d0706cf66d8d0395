"""Every ```python block of README.md runs as written (each in a fresh namespace)."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
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
    assert "-m adamod_optax.demo" in commands[0] and "-m pytest" in commands[1]


def test_readme_has_no_unfilled_placeholders():
    text = README.read_text()
    assert not re.findall(r"\b[A-Z][A-Z0-9]+_[A-Z0-9_]+\b(?<!_STATE)", text.replace(
        "OMP_WAIT_POLICY", "").replace("RECOMPUTE_RATES", "").replace("XLA_FLAGS", "")
        .replace("HYPOTHESIS_PROFILE", "").replace("ADAMOD_SMOKE", "")
        .replace("ADAMOD_SHAKESPEARE_TXT", "")), "placeholder left in README.md"
