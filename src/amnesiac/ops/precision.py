"""Mixed precision: the autocast context of a ``precision`` setting."""

from __future__ import annotations

import contextlib
from typing import Any, Literal, get_args

import torch

from amnesiac.errors import InvalidSettingsError

#: The values of every ``precision`` setting.
Precision = Literal["fp32", "bf16"]


def precision_problem(precision: str) -> str | None:
    """What is wrong with a ``precision`` setting, or ``None`` if it is valid."""
    if precision in get_args(Precision):
        return None
    return f"precision must be one of {list(get_args(Precision))}, got {precision!r}"


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager[Any]:
    """The context that runs a forward (and its backward) pass at ``precision``.

    ``"fp32"``: no autocast. ``"bf16"``: :func:`torch.autocast` with bfloat16 on ``device_type``
    (``"cpu"``, ``"cuda"``, ...); weights stay float32 and ops that need range (softmax,
    losses) run in float32 (PyTorch's autocast op lists).
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    problem = precision_problem(precision)
    if problem:
        raise InvalidSettingsError(problem)
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
