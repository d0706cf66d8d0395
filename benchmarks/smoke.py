"""Smoke mode, shared by the convergence tasks and the notebooks."""

import os

_FLAGS = ("CI", "ADAMOD_SMOKE", "SMOKE")


def smoke_requested() -> bool:
    """True when ``CI``, ``ADAMOD_SMOKE`` or ``SMOKE`` asks for the tiny version."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in _FLAGS)


LABEL = "SMOKE MODE: tiny run, numbers mean nothing"


def label(text: str = "", smoke: bool | None = None) -> str:
    """``text`` marked as smoke output when smoke mode is on, unchanged otherwise.

    Every table, printout and figure title that a notebook makes from a smoke-size
    run goes through this, so tiny-run numbers never appear unlabelled beside the
    conclusions, which come from the committed full runs in ``docs/results/``.
    """
    if not (smoke_requested() if smoke is None else smoke):
        return text
    return f"{LABEL}. {text}" if text else LABEL
