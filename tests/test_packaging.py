"""Packaging as the ecosystem expects: version, py.typed, type hints, ruff, doctests."""

import importlib.metadata
import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import adamod_optax

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "adamod_optax"
# PEP 440 release / pre-release / dev versions, e.g. 0.1.0, 0.2.0rc1, 1.0.0.dev3
PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def test_version_string():
    version = adamod_optax.__version__
    assert isinstance(version, str) and PEP440.match(version), version
    try:
        installed = importlib.metadata.version("adamod-optax")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed is not None and pathlib.Path(adamod_optax.__file__).parent == PACKAGE:
        # pyproject reads the version from the package (setuptools dynamic attr)
        assert installed == version


def test_changelog_names_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[(\d[^\]]*)\]", text, flags=re.M)
    assert versions, "CHANGELOG.md has no '## [x.y.z]' release heading"
    assert versions[0] == adamod_optax.__version__


def test_py_typed_marker_is_shipped():
    assert (PACKAGE / "py.typed").is_file()
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]["adamod_optax"]
    assert "py.typed" in package_data


def test_public_api_is_type_annotated():
    for name in adamod_optax.__all__:
        obj = getattr(adamod_optax, name)
        if not inspect.isfunction(obj):
            continue
        sig = inspect.signature(obj)
        assert sig.return_annotation is not inspect.Signature.empty, name
        for param in sig.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            assert param.annotation is not inspect.Parameter.empty, (name, param.name)


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    proc = subprocess.run(
        [ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Docstring examples run in a fresh interpreter: the test process runs with
# jax_enable_x64 (conftest), users' default is float32, and the printed
# outputs in the docstrings are written for the default.
_DOCTEST_SCRIPT = """
import doctest, importlib, pkgutil, sys
import adamod_optax
flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
failed = attempted = 0
for info in pkgutil.walk_packages(adamod_optax.__path__, "adamod_optax."):
    module = importlib.import_module(info.name)
    result = doctest.testmod(module, optionflags=flags)
    failed += result.failed
    attempted += result.attempted
print(f"attempted={attempted} failed={failed}")
sys.exit(1 if failed else 0)
"""


def test_docstring_examples_run_as_doctests():
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _DOCTEST_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    attempted = int(re.search(r"attempted=(\d+)", proc.stdout).group(1))
    assert attempted >= 5, proc.stdout  # the examples exist and ran

