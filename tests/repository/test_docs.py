"""The documentation site builds with warnings as errors, and it is complete.

One Sphinx build (``python -m sphinx -W --keep-going -b html docs <tmp>``, the command in
CONTRIBUTING.md) is shared by the checks: an API page for every public name, every notebook
rendered with its figures, the results page with its figures. The notebooks execute during the
build in smoke mode, so the build needs the data sets the notebooks read and is skipped, with
the install commands, without them. The API-coverage extension is also tested on its own, on
made-up lists, and the ``python`` blocks of the guides run like the README's.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import adamod_optax
from tests import dataset_check

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
PUBLIC = sorted(set(adamod_optax.__all__) - {"__version__"})
BUILD_TIMEOUT_S = 1800


def _load_coverage_extension():
    spec = importlib.util.spec_from_file_location(
        "adamod_docs_api_coverage", DOCS / "_ext" / "api_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- #
# The API-coverage check, without Sphinx's build.
# --------------------------------------------------------------------------- #


def test_coverage_check_reports_names_without_entry():
    ext = _load_coverage_extension()
    documented = {"adamod_optax.adamod", "adamod_optax.adabound"}
    assert ext.missing_entries(["adamod", "adabound", "__version__"], documented) == []
    assert ext.missing_entries(["adamod", "zeta", "alpha", "__version__"], documented) == [
        "alpha", "zeta"]
    # An entry in another module does not count.
    assert ext.missing_entries(["adamod"], {"optax.adamod"}) == ["adamod"]


class _FakeDomain:
    def __init__(self, names):
        self.objects = {name: None for name in names}


class _FakeEnv:
    def __init__(self, names):
        self._domain = _FakeDomain(names)

    def get_domain(self, name):
        assert name == "py"
        return self._domain


def test_coverage_extension_fails_the_build_for_a_new_public_name(monkeypatch):
    from sphinx.errors import ExtensionError

    ext = _load_coverage_extension()
    documented = [f"adamod_optax.{name}" for name in PUBLIC]
    ext._check(None, _FakeEnv(documented))  # the real API: complete, no error
    monkeypatch.setattr(adamod_optax, "__all__", [*adamod_optax.__all__, "brand_new_optimizer"])
    with pytest.raises(ExtensionError, match="brand_new_optimizer"):
        ext._check(None, _FakeEnv(documented))


def test_api_page_lists_every_public_name():
    listed = set(re.findall(r"^\s{3}(\w+)\s*$", (DOCS / "api.md").read_text(), flags=re.M))
    assert set(PUBLIC) <= listed, sorted(set(PUBLIC) - listed)
    assert listed <= set(PUBLIC), sorted(listed - set(PUBLIC))


# --------------------------------------------------------------------------- #
# The guides' code runs.
# --------------------------------------------------------------------------- #

_GUIDE_BLOCKS = [
    (path, index, code)
    for path in sorted([DOCS / "index.md", *(DOCS / "guides").glob("*.md")])
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S))
]


@pytest.mark.parametrize(
    "path,index,code", _GUIDE_BLOCKS,
    ids=[f"{p.relative_to(DOCS)}[{i}]" for p, i, _ in _GUIDE_BLOCKS])
def test_guide_python_block_runs(path, index, code):
    if "from flax" in code or "import flax" in code:
        pytest.importorskip("flax")
    if "orbax" in code:
        pytest.importorskip("orbax.checkpoint")
    exec(compile(code, f"{path.relative_to(ROOT)}[python block {index}]", "exec"),
         {"__name__": "__docs__"})


# --------------------------------------------------------------------------- #
# The build.
# --------------------------------------------------------------------------- #


def _missing_data() -> list[str | None]:
    from benchmarks import bible, datasets

    return [datasets.missing_fashion_mnist(), dataset_check.shakespeare_missing(), bible.missing()]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "jupytext"):
        pytest.importorskip(module, reason="docs tooling missing: pip install '.[docs]'")
    dataset_check.require(*_missing_data())  # the notebooks executed by the build read them
    out = tmp_path_factory.mktemp("docs") / "html"
    env = dict(os.environ)
    # Deterministic offline build: no intersphinx downloads (see docs/conf.py).
    env["ADAMOD_DOCS_INTERSPHINX"] = "0"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(DOCS), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"sphinx -W failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    return out


@pytest.mark.slow
def test_every_public_name_has_an_api_page(site):
    for name in PUBLIC:
        page = site / "_autosummary" / f"adamod_optax.{name}.html"
        assert page.is_file(), f"no API page for {name}"
        assert f'id="adamod_optax.{name}"' in page.read_text(), f"{page.name} lacks the entry"
    api = (site / "api.html").read_text()
    for name in PUBLIC:
        assert f"adamod_optax.{name}.html" in api, f"api.html does not link {name}"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_page_shows_its_figures(site, notebook):
    page = site / "notebooks" / f"{notebook.stem}.html"
    assert page.is_file(), f"{notebook.name} was not rendered"
    html = page.read_text()
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", html)
    # A notebook that loads committed results shows their figures besides its own.
    expected = 2 if "docs/results" in notebook.read_text() else 1
    assert len(images) >= expected, f"{page.name}: {len(images)} images, expected {expected}"
    for src in images:
        assert (page.parent / src).resolve().is_file(), f"{page.name}: missing image {src}"
    # The build runs the notebooks in smoke mode: their smoke output is labelled.
    assert "SMOKE MODE" in html, f"{page.name} shows smoke output without the label"
    assert "Traceback" not in html


@pytest.mark.slow
def test_results_page_shows_the_committed_figures(site):
    source = (DOCS / "guides" / "results.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(\.\./results/([^)]+\.png)\)", source)
    assert len(figures) >= 6
    html = (site / "guides" / "results.html").read_text()
    assert html.count("<img") >= len(figures)
    for png in figures:  # Sphinx copies images flat into _images/, by file name
        name = png.rsplit("/", 1)[-1]
        assert (site / "_images" / name).is_file(), f"{png} not copied into the site"
