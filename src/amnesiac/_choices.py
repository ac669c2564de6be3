"""Allowed values of a setting, written once: in its ``Literal`` annotation."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal


def choice_problems(settings: Any) -> list[str]:
    """For each field of dataclass ``settings`` annotated with a ``Literal``, a problem when its
    value is not one of the allowed ones: the allowed values are written once, in the type."""
    hints = typing.get_type_hints(type(settings))
    out = []
    for f in dataclasses.fields(settings):
        tp = hints[f.name]
        if typing.get_origin(tp) is Literal:
            allowed = typing.get_args(tp)
            value = getattr(settings, f.name)
            if value not in allowed:
                out.append(f"{f.name} must be one of {list(allowed)}, got {value!r}")
    return out
