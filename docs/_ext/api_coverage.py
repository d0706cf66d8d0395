"""Fails the Sphinx build when a public name of ``adamod_optax`` has no API entry.

A name is public when it is listed in ``adamod_optax.__all__`` (``__version__``
aside). It has an entry when the Python domain knows ``adamod_optax.<name>``,
which the autosummary pages generated from ``docs/api.md`` provide. Adding a
name to ``__all__`` without listing it in ``docs/api.md`` therefore stops the
build with the missing names, whatever the warning settings.

:func:`missing_entries` is the check itself, kept free of Sphinx so that the
test suite can run it on made-up lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MODULE = "adamod_optax"
# Names in __all__ that are not API to document.
NOT_DOCUMENTED = frozenset({"__version__"})


def missing_entries(public: Iterable[str], documented: Iterable[str],
                    module: str = MODULE) -> list[str]:
    """Public names without an entry, sorted.

    Args:
      public: the module's ``__all__``.
      documented: fully qualified names the documentation defines
        (``"adamod_optax.adamod"``, ...).
      module: the module the public names belong to.

    Returns:
      The names of ``public`` (minus :data:`NOT_DOCUMENTED`) for which
      ``f"{module}.{name}"`` is not in ``documented``.
    """
    documented = set(documented)
    return sorted(name for name in set(public) - NOT_DOCUMENTED
                  if f"{module}.{name}" not in documented)


def _check(app, env) -> None:
    from sphinx.errors import ExtensionError

    import adamod_optax

    documented = env.get_domain("py").objects.keys()
    missing = missing_entries(adamod_optax.__all__, documented)
    if missing:
        raise ExtensionError(
            "public names without an API entry (add them to docs/api.md): "
            + ", ".join(missing))


def setup(app: Any) -> dict[str, Any]:
    # env-check-consistency runs once every document has been read, before writing.
    app.connect("env-check-consistency", _check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
