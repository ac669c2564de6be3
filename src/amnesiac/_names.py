"""Helpers for error messages about names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, valid: Iterable[str], what: str) -> str:
    """Return an error message for an unknown ``name`` listing the valid ones and the closest."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Valid {what}s: {', '.join(valid)}."
