"""Sphinx configuration for the adamod-optax documentation.

Build from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

``python -m`` puts the current directory first on the module path, so autodoc
imports ``adamod_optax`` from the checkout (or from an installed copy when run
elsewhere). The notebooks in ``notebooks/`` (jupytext percent-format ``.py``
files, reached through the ``docs/notebooks`` link) are executed during the
build in smoke mode; their kernels inherit the environment set below.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import urllib.request

import sphinx.util.inspect

import adamod_optax

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent

# -- Environment for the notebook kernels -------------------------------------
# The notebooks import `benchmarks.*` from the repository root, so the kernels
# need the root on PYTHONPATH (an environment variable, inherited by the kernel
# processes; this file does not touch sys.path). ADAMOD_SMOKE=1 runs every
# training cell at its tiny smoke size: the pages show the committed full-run
# results from docs/results/ beside the clearly labelled smoke output.
os.environ["ADAMOD_SMOKE"] = "1"
# The inline backend, whatever the caller's MPLBACKEND: figures then become
# cell outputs (with Agg, plt.show() would display nothing).
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
_pythonpath = os.environ.get("PYTHONPATH", "")
if str(ROOT) not in _pythonpath.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), _pythonpath) if p)

# -- Project information -------------------------------------------------------
project = "adamod-optax"
author = "adamod-optax developers"
copyright = "2026, adamod-optax developers"
release = adamod_optax.__version__
version = release

# -- General configuration -----------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "myst_nb",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_ext",
    "_templates",
    "conf.py",
    "results/**",
    "Thumbs.db",
    ".DS_Store",
]
root_doc = "index"

# -- autodoc / autosummary / napoleon -------------------------------------------
autosummary_generate = True
autodoc_member_order = "bysource"
# The right-hand "Contents" column lists sections only, not every documented attribute.
toc_object_entries = False
autodoc_typehints = "signature"
autodoc_default_options = {"exclude-members": "__new__, __init__, count, index"}
# Keep optax's and chex's type aliases as names in signatures instead of the
# unions they stand for (the modules use `from __future__ import annotations`).
autodoc_type_aliases = {
    name: name
    for name in (
        "optax.ScalarOrSchedule", "optax.Params", "optax.Updates", "optax.OptState",
        "optax.Schedule", "chex.Array", "chex.Numeric", "chex.ArrayTree",
    )
}


def _alias_repr(self) -> str:
    return self.name


# Sphinx prints an alias inside Optional[...] / unions with its placeholder's repr,
# "TypeAliasForwardRef('optax.ScalarOrSchedule')"; print the alias name instead.
sphinx.util.inspect.TypeAliasForwardRef.__repr__ = _alias_repr
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- myst / myst-nb ----------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_allow_errors = False
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_execution_show_tb = True
# Every notebook runs in smoke mode (seconds each); none is excluded. A notebook
# too slow even for that would be listed here and then has to display its
# committed results without executing anything.
nb_execution_excludepatterns: list[str] = []
nb_merge_streams = True
# Markdown displayed by the notebooks (result tables) is parsed as MyST, which has tables.
nb_render_markdown_format = "myst"

# -- HTML ----------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"adamod-optax {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}

# -- intersphinx -----------------------------------------------------------------------
# Links into the optax, JAX and Flax docs need their inventories, which are on
# hosts a CI runner without general network access cannot reach; a failed
# download is a warning and would break the -W build. So the mapping only
# holds the sites that answer a quick probe (ADAMOD_DOCS_INTERSPHINX=1 forces
# all of them, =0 none).
_INTERSPHINX = {
    "python": "https://docs.python.org/3/",
    "optax": "https://optax.readthedocs.io/en/latest/",
    "jax": "https://docs.jax.dev/en/latest/",
    "flax": "https://flax.readthedocs.io/en/latest/",
}


def _reachable(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url + "objects.inv", timeout=timeout) as response:
            return response.status == 200
    except Exception:  # any failure means "not reachable"
        return False


def _intersphinx_mapping() -> dict[str, tuple[str, None]]:
    mode = os.environ.get("ADAMOD_DOCS_INTERSPHINX", "auto").lower()
    if mode in ("0", "off", "no", "false"):
        return {}
    force = mode in ("1", "on", "yes", "true")
    return {name: (url, None) for name, url in _INTERSPHINX.items()
            if force or _reachable(url)}


intersphinx_mapping = _intersphinx_mapping()
intersphinx_timeout = 10


# -- Local extension: every public name must have an API entry ------------------------
def _load_local_extension(name: str):
    """Imports docs/_ext/<name>.py by file path (no sys.path edits)."""
    path = DOCS / "_ext" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"adamod_docs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup(app):
    return _load_local_extension("api_coverage").setup(app)
