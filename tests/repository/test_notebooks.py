"""Every notebook (jupytext percent-format ``notebooks/*.py``) runs headless in smoke mode.

Each ``.py`` is converted to an ``.ipynb`` in a temporary directory and executed
with nbmake in a separate pytest process, with ``ADAMOD_SMOKE=1`` so the notebook
shrinks its data and training. A failure shows the notebook's own error output.

A notebook that needs a data set declares it on a line of its own::

  # requires-data: fashion-mnist

and is skipped, with the install command, when that data set is missing (in CI, where
``.ci/run`` installs every data set, it fails instead).
"""

import glob
import os
import re
import subprocess
import sys

import pytest

from benchmarks import bible, datasets
from tests import dataset_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.py")))
TIMEOUT_S = 300  # per notebook; smoke mode takes well under a minute each



# data set name in "# requires-data:" -> function returning None or a "how to install" message
_DATA_CHECKS = {"fashion-mnist": datasets.missing_fashion_mnist,
                "shakespeare": dataset_check.shakespeare_missing,
                "bible": bible.missing}


def _required_data(source: str):
    names = re.findall(r"^# requires-data:\s*(.+?)\s*$", source, flags=re.MULTILINE)
    return [n.strip() for line in names for n in line.split(",") if n.strip()]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/*.py found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    jupytext = pytest.importorskip(
        "jupytext", reason="notebook tooling missing: pip install -e '.[test]'")
    pytest.importorskip("nbmake", reason="notebook tooling missing: pip install -e '.[test]'")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for name in _required_data(source):
        check = _DATA_CHECKS.get(name)
        assert check is not None, f"{os.path.basename(path)}: unknown requires-data {name!r}"
        dataset_check.require(check())

    notebook = jupytext.reads(source, fmt="py:percent")
    ipynb = tmp_path / (os.path.splitext(os.path.basename(path))[0] + ".ipynb")
    jupytext.write(notebook, str(ipynb))

    env = dict(os.environ)
    env["ADAMOD_SMOKE"] = "1"
    env["MPLBACKEND"] = "Agg"
    # The kernel imports the package and the benchmark modules from this checkout.
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-m", "pytest", "--nbmake", f"--nbmake-timeout={TIMEOUT_S}",
           "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(ipynb)]
    proc = subprocess.run(cmd, check=False, cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S + 120)
    if proc.returncode != 0:
        pytest.fail(
            f"{os.path.basename(path)} failed in smoke mode (exit {proc.returncode}).\n"
            f"--- nbmake output (tail) ---\n{proc.stdout[-8000:]}\n"
            f"--- stderr (tail) ---\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
