"""Shrink an unlearning update toward the original weights while the objective still holds.

An update θ - θ0 that forgets the forget set usually overshoots: forgetting is a threshold event
(every instance past its decision boundary), while the damage to everything else grows with the
size of the update. :func:`shrink_update` finds, by bisection, the smallest fraction ``a`` of the
update for which ``θ0 + a (θ - θ0)`` still meets the objective, and returns that model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from amnesiac.errors import InvalidSettingsError


def interpolated_state(s0: dict[str, Tensor], s1: dict[str, Tensor], a: float) -> dict[str, Tensor]:
    """The state dict ``θ0 + a (θ - θ0)`` of state dicts ``s0`` (θ0) and ``s1`` (θ) with the same
    keys: every floating-point entry interpolated, the others (e.g. BatchNorm's step counters)
    taken from ``s1``."""
    return {k: s0[k] + a * (s1[k] - s0[k]) if s1[k].is_floating_point() else s1[k] for k in s1}


@torch.no_grad()
def shrink_update(
    original: nn.Module,
    model: nn.Module,
    holds: Callable[[nn.Module], bool],
    *,
    steps: int = 10,
) -> tuple[nn.Module, float]:
    """The model ``θ0 + a (θ - θ0)`` with the smallest ``a`` in ``(0, 1]`` found by ``steps``
    bisection steps for which ``holds(model)`` is true, and ``a``.

    Every floating-point parameter and buffer is interpolated; other buffers (e.g. BatchNorm's
    step counters) are taken from ``model``. ``holds`` must be true for ``model`` itself (``a=1``);
    the search assumes it stays true above the smallest such ``a``, and the returned model is
    checked again, so the result always satisfies ``holds``. Neither input is changed.

    Args:
        original: The model before unlearning (θ0).
        model: The unlearned model (θ), same architecture.
        holds: Whether a model meets the objective (e.g. every forget instance misclassified).
        steps: Bisection steps; the fraction is found to within ``2**-steps``.

    Raises:
        ValueError: If ``holds(model)`` is false or ``steps`` is negative.
    """
    if steps < 0:
        raise InvalidSettingsError(f"steps must be >= 0, got {steps}")
    s0, s1 = original.state_dict(), model.state_dict()
    if s0.keys() != s1.keys():
        raise InvalidSettingsError("original and model must have the same parameters and buffers")
    out = copy.deepcopy(model)

    def at(a: float) -> bool:
        out.load_state_dict(interpolated_state(s0, s1, a))
        return holds(out)

    if not at(1.0):
        raise InvalidSettingsError("the objective does not hold for the unlearned model itself")
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if at(mid):
            hi = mid
        else:
            lo = mid
    if not at(hi):  # not monotone between the probes: fall back to the full update
        hi = 1.0
        at(hi)
    return out, hi
