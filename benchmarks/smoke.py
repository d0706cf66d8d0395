"""Smoke mode, shared by the convergence tasks and the notebooks."""

import os

_FLAGS = ("CI", "ADAMOD_SMOKE", "SMOKE")


def smoke_requested() -> bool:
    """True when ``CI``, ``ADAMOD_SMOKE`` or ``SMOKE`` asks for the tiny version."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in _FLAGS)
