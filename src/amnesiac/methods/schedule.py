"""Step schedules of methods that run in passes over their data (epochs, rounds)."""

from __future__ import annotations

import math

__all__ = ["alternating_schedule", "heal_lr_factor", "passes_to_steps"]


def alternating_schedule(
    *,
    rounds: int,
    forget_rounds: int,
    n_forget: int,
    forget_batch: int,
    n_retain: int,
    retain_batch: int,
    retain_cap: int = 0,
) -> list[tuple[str, int]]:
    """The steps of a run in rounds (epochs): in each of the first ``forget_rounds`` rounds, a
    pass over the ``n_forget`` forget instances in batches of ``forget_batch``, then in every
    round a pass over the ``n_retain`` retained ones in batches of ``retain_batch``, cut to
    ``retain_cap`` steps (0: the whole pass). Each entry is ``(phase, ordinal)``: ``"forget"``
    or ``"retain"`` and the 1-based count of that phase's steps so far (for
    :meth:`Unlearner.epoch_batch`).

    Example:
        >>> alternating_schedule(rounds=2, forget_rounds=1, n_forget=8, forget_batch=8,
        ...                      n_retain=100, retain_batch=10, retain_cap=2)
        [('forget', 1), ('retain', 1), ('retain', 2), ('retain', 3), ('retain', 4)]
    """
    forget_steps = -(-n_forget // forget_batch)
    per_pass = -(-n_retain // retain_batch)
    retain_steps = per_pass if retain_cap == 0 else min(retain_cap, per_pass)
    out: list[tuple[str, int]] = []
    n_f = n_r = 0
    for r in range(1, rounds + 1):
        if r <= forget_rounds:
            out += [("forget", n_f + i) for i in range(1, forget_steps + 1)]
            n_f += forget_steps
        out += [("retain", n_r + i) for i in range(1, retain_steps + 1)]
        n_r += retain_steps
    return out


def passes_to_steps(n: int, batch_size: int, passes: float) -> int:
    """Steps of ``passes`` passes over ``n`` examples in batches of ``batch_size`` (the last
    batch of a pass may be smaller), rounded up."""
    return math.ceil(passes * -(-n // batch_size))


def heal_lr_factor(healed: int, heal_steps: int, schedule: str) -> float:
    """The factor on the learning rate ``healed`` steps into a heal of ``heal_steps`` steps:
    1 throughout for ``"constant"``; for ``"cosine"``, a half cosine from 1 down to 0 over the
    heal, and 1 again past its end (a heal whose last step left an instance short of the
    objective goes on at the full rate until it holds again).

    Example:
        >>> [round(heal_lr_factor(h, 4, "cosine"), 3) for h in range(6)]
        [1.0, 0.854, 0.5, 0.146, 1.0, 1.0]
        >>> heal_lr_factor(2, 4, "constant")
        1.0
    """
    if schedule == "constant" or healed >= heal_steps:
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown heal schedule {schedule!r}; use 'constant' or 'cosine'")
    return 0.5 * (1.0 + math.cos(math.pi * healed / heal_steps))
