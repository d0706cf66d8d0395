"""Packaging as the ecosystem expects: version, py.typed, type hints, ruff, doctests,
declared dependencies, the floor stack CI installs, and metadata a packager accepts."""

import ast
import importlib.metadata
import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

import adamod_optax

ROOT = pathlib.Path(__file__).resolve().parents[2]
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
    # Through the interpreter running the tests (ruff is a test dependency), so that the check
    # cannot skip when the virtual environment's bin/ is not on PATH.
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(strings):
    from packaging.requirements import Requirement  # a dependency of pytest

    return {canonicalize(r.name): r for r in map(Requirement, strings)}


def canonicalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Top-level module -> the distribution that provides it, for what the library may import.
# The library imports its runtime dependencies and itself, nothing else.
DISTRIBUTION_OF = {"jax": "jax", "jaxlib": "jaxlib", "optax": "optax", "numpy": "numpy"}
RUNTIME_IMPORTS = {*DISTRIBUTION_OF, "adamod_optax"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module == "adamod_optax":
                names.update(f"adamod_optax.{alias.name}" for alias in node.names)
    return names


def test_package_imports_only_runtime_dependencies():
    for path in sorted(PACKAGE.glob("*.py")):
        top = {name.split(".")[0] for name in _imports(path)}
        outside = top - RUNTIME_IMPORTS - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {sorted(outside)}"


def _runtime_imports() -> set[str]:
    """Top-level modules outside the standard library that the package imports."""
    names = set()
    for path in sorted(PACKAGE.glob("*.py")):
        names |= {name.split(".")[0] for name in _imports(path)}
    return names - set(sys.stdlib_module_names) - {"adamod_optax"}


def test_every_runtime_import_is_a_declared_dependency():
    declared = _requirements(_pyproject()["project"]["dependencies"])
    imported = _runtime_imports()
    assert {"jax", "optax", "numpy"} <= imported, imported  # the parse sees the imports
    for module in sorted(imported):
        assert module in DISTRIBUTION_OF, f"adamod_optax imports {module}: declare it"
        assert canonicalize(DISTRIBUTION_OF[module]) in declared, module
    # and the table agrees with what is installed, where it is installed
    installed = importlib.metadata.packages_distributions()
    for module, dist in DISTRIBUTION_OF.items():
        if module in installed:
            assert dist in installed[module], (module, installed[module])
    # chex is a test tool only: no import of it in the package, nor a runtime dependency
    assert "chex" not in imported
    assert "chex" not in declared
    assert "chex" in _requirements(_pyproject()["project"]["optional-dependencies"]["test"])


FLOOR_CONSTRAINTS = ROOT / ".ci" / "floor-constraints.txt"


def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and not any(c in version for c in "<>=!~,;"), line
            pins[canonicalize(name)] = version
    return pins


def test_floor_constraints_pin_exactly_the_declared_floors():
    """.ci/floor-constraints.txt (the floor stack CI tests) cannot drift from pyproject."""
    from packaging.version import Version

    pins = _pins(FLOOR_CONSTRAINTS)
    deps = _requirements(_pyproject()["project"]["dependencies"])
    for name, req in deps.items():
        floors = [s.version for s in req.specifier if s.operator == ">="]
        assert len(floors) == 1, f"{name}: declare one '>=' floor, got {req.specifier}"
        assert name in pins, f"{name} is not pinned in {FLOOR_CONSTRAINTS.name}"
        assert Version(pins[name]) == Version(floors[0]), (name, pins[name], floors[0])
        assert req.specifier.contains(pins[name])
    # the test tools' pins are inside the ranges the `test` extra declares
    test_extra = _requirements(_pyproject()["project"]["optional-dependencies"]["test"])
    for name, version in pins.items():
        if name in test_extra:
            assert test_extra[name].specifier.contains(version, prereleases=True), name
    # the CI step installs with these constraints exactly the unit tests' packages
    run = (ROOT / ".ci" / "run").read_text()
    step = re.search(r"^\.venv-floor/bin/pip install .*-c \.ci/floor-constraints\.txt (.*)$",
                     run, flags=re.M)
    assert step, "the floor step is gone from .ci/run"
    installed = {canonicalize(n) for n in step.group(1).split() if n != "."}
    assert installed <= set(test_extra), installed - set(test_extra)
    assert installed <= set(pins), installed - set(pins)


def test_metadata_a_packager_accepts():
    project = _pyproject()["project"]
    # an SPDX license expression, the license file shipped, and no License :: classifier next
    # to it (setuptools refuses the combination)
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"] and (ROOT / "LICENSE").is_file()
    classifiers = project["classifiers"]
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    build = _requirements(_pyproject()["build-system"]["requires"])
    assert build["setuptools"].specifier.contains("77") and not build[
        "setuptools"].specifier.contains("76.1")  # PEP 639 license fields
    # every address in the metadata must be real: none is claimed while none exists
    for url in project.get("urls", {}).values():
        assert "github.com/adamod-optax" not in url, url


def test_package_has_no_import_cycle():
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    graph = {
        name: {
            imp.split(".")[1] for imp in _imports(path)
            if imp.startswith("adamod_optax.") and imp.split(".")[1] in modules
        } - {name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*trail, node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        visit(name, [])
    # The aliases' modules do not reach into each other's private helpers.
    for name, path in modules.items():
        for imp in _imports(path):
            if imp.startswith("adamod_optax._") and imp.count(".") == 1:
                continue
            parts = imp.split(".")
            assert not (len(parts) == 3 and parts[2].startswith("_")), (name, imp)


def test_no_sys_path_edits():
    pattern = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)|\[|\+=|=)")
    offenders = []
    for folder in ("adamod_optax", "tests", "benchmarks", "notebooks", "examples", "docs"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_relative_to(ROOT / "tests" / "golden") or path == pathlib.Path(__file__):
                continue
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


@pytest.mark.slow
def test_wheel_holds_only_the_library(tmp_path):
    # Build from a copy of what the sdist would hold, so that setuptools' build/ and
    # *.egg-info/ folders land in tmp_path, not in the checkout.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "outputs", "__pycache__", "_build"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(src)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("adamod_optax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    files = sorted(n for n in names if ".dist-info/" not in n)
    library = sorted(f"adamod_optax/{p.name}" for p in PACKAGE.iterdir()
                     if p.suffix == ".py" or p.name == "py.typed")
    assert files == library, files
    # the wheel's METADATA declares every distribution the library imports at run time
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    requires = _requirements(
        line.split(":", 1)[1].strip() for line in text.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    )
    for module in _runtime_imports():
        assert canonicalize(DISTRIBUTION_OF[module]) in requires, module
    assert "License-Expression: Apache-2.0" in text.splitlines()


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


@pytest.mark.slow
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

