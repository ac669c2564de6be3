"""Helpers for error messages about names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, valid: Iterable[str], what: str) -> str:
    """Return an error message for an unknown ``name`` listing the valid ones and the closest."""
    valid = sorted(valid)
    if len(valid) > 40:  # a model zoo: the closest names, not the whole list
        close = difflib.get_close_matches(name, valid, n=5, cutoff=0.5)
        hint = f" Closest: {', '.join(close)}." if close else ""
        return f"unknown {what} {name!r}.{hint} ({len(valid)} {what}s exist.)"
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Valid {what}s: {', '.join(valid)}."
