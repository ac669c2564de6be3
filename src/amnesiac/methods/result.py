"""What a run works on (:class:`UnlearnData`) and what it returns (:class:`UnlearnResult`);
re-exported by :mod:`amnesiac.methods.base`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass
class UnlearnResult:
    """What :func:`amnesiac.unlearn` returns.

    Attributes:
        model: The unlearned model (a new object, in eval mode).
        method: Registry name of the method.
        config: The resolved settings.
        steps: Optimizer steps taken.
        stopped_by: ``"forgotten"`` (the objective's stop rule fired), ``"rule"`` (a method's
            own stop rule fired, e.g. SCAR's accuracy threshold), ``"max_steps"`` (the step
            budget ran out: ``max_steps``, or the method's own schedule when shorter),
            ``"no_steps"`` (a budget of 0 steps) or ``"complete"`` (a method without update
            steps).
        forgotten: Whether every forget instance meets the objective at the end.
        history: One dict per step: the step number, the named losses and ``forget_acc`` (percent
            of forget instances still predicted as their true label) and, for ``relabel``,
            ``target_acc``.
        seconds: Wall time by phase, e.g. ``{"adversarial": .., "importance": .., "unlearn": ..,
            "total": ..}``.
        update_fraction: Fraction of the update kept by ``shrink_steps`` (1.0 without it).
        rescued_from: ``None``, or the divergence a first run ended in, when the run was redone
            with the gradient bounded (``rescue_clip_grad_norm``; ``config`` has the bound it
            ran with, ``seconds["diverged"]`` the first run's time, and ``history`` the second
            run only).
    """

    model: nn.Module
    method: str
    config: dict[str, Any]
    steps: int
    stopped_by: str
    forgotten: bool
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    update_fraction: float = 1.0
    rescued_from: str | None = None


@dataclass
class UnlearnData:
    """The tensors a run works on, on the model's device and dtype.

    Attributes:
        forget_x: Forget images ``(K, C, H, W)`` in [0, 1].
        forget_y: True labels ``(K,)``.
        targets: Relabel targets ``(K,)`` (``None`` for ``misclassify``).
        retain_x: Retained images, when the method reads them and they were given.
        retain_y: Retained labels.
        num_classes: Number of classes of the model.
        surrogate_x: Unlabeled in-domain images (never the training set) a method may hold
            the model's behaviour on, when the caller has them and the method accepts them.
    """

    forget_x: Tensor
    forget_y: Tensor
    targets: Tensor | None
    retain_x: Tensor | None
    retain_y: Tensor | None
    num_classes: int
    surrogate_x: Tensor | None = None


@dataclass
class RunState:
    """What a run of the :class:`~amnesiac.methods.base.Unlearner` template did, filled in as it
    goes; :class:`UnlearnResult` reports it."""

    stopped_by: str
    steps: int = 0
    forgotten: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    fraction: float = 1.0
