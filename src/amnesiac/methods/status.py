"""Checks the :class:`~amnesiac.methods.base.Unlearner` template runs around its steps: train/eval
modes, whether the forget set meets the objective, and the divergence guard and its rescue."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from amnesiac.errors import DivergenceError
from amnesiac.methods.result import UnlearnData, UnlearnResult
from amnesiac.methods.settings import StepConfig, UnlearnConfig

if TYPE_CHECKING:
    from amnesiac.methods.base import Unlearner

logger = logging.getLogger(__name__)


def set_train_mode(model: nn.Module, *, bn_train: bool) -> None:
    """Put ``model`` in train mode, with BatchNorm layers in eval mode unless ``bn_train``."""
    model.train()
    if not bn_train:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def meets_objective(pred: Tensor, label: Tensor, target: Tensor | None = None) -> Tensor:
    """Which instances meet the objective, the one rule of "forgotten": predicted as their
    target where targets are given (relabel), else as anything but their true label.

    Example:
        >>> meets_objective(torch.tensor([1, 2]), torch.tensor([1, 0])).tolist()
        [False, True]
        >>> pred, label, target = torch.tensor([1, 2]), torch.tensor([0, 0]), torch.tensor([1, 1])
        >>> meets_objective(pred, label, target).tolist()
        [True, False]
    """
    return pred == target if target is not None else pred != label


@torch.no_grad()
def forget_logits(model: nn.Module, data: UnlearnData, *, batch_size: int) -> Tensor:
    """``model``'s logits on the whole forget set, in eval mode and float32.

    Shape:
        returns ``(K, C)``.
    """
    was_training = model.training
    model.eval()
    try:
        return torch.cat(
            [
                model(data.forget_x[i : i + batch_size]).float()
                for i in range(0, len(data.forget_x), batch_size)
            ]
        )
    finally:
        model.train(was_training)


def status_of(logits: Tensor, data: UnlearnData) -> dict[str, float]:
    """Forget-set accuracy in percent (and target accuracy for relabel) from the forget set's
    logits (:func:`forget_logits`).

    ``forgotten`` is 1.0 when every instance meets the objective: predicted as its target
    (relabel) or as anything but its true label (misclassify).
    """
    pred = logits.argmax(1)
    out = {"forget_acc": float((pred == data.forget_y).float().mean() * 100)}
    met = meets_objective(pred, data.forget_y, data.targets)
    if data.targets is not None:
        out["target_acc"] = float(met.float().mean() * 100)
    out["forgotten"] = float(bool(met.all()))
    return out


def forget_status(model: nn.Module, data: UnlearnData, *, batch_size: int) -> dict[str, float]:
    """:func:`status_of` ``model`` (its logits on the forget set, in eval mode)."""
    return status_of(forget_logits(model, data, batch_size=batch_size), data)


def stop_check(
    model: nn.Module,
    data: UnlearnData,
    *,
    batch_size: int,
    low_precision: contextlib.AbstractContextManager[Any] | None,
    decisive: Callable[[], bool],
) -> tuple[Tensor, dict[str, float]]:
    """The forget set's logits and :func:`status_of` after a step, run under ``low_precision``
    (the run's autocast; ``None``: float32) and checked again in float32 wherever they say the
    objective is met and ``decisive()`` (that would start the heal or end the run), so
    "forgotten" is always decided in full precision.

    A bfloat16 pass is about 3x faster than a float32 one on a CPU with AMX; the steps between
    the first forgotten one and the end of the heal only need the logits (e.g. for
    :class:`~amnesiac.methods.l2ul.L2UL`'s skip) and a status for the history.
    """
    if low_precision is not None:
        with low_precision:
            logits = forget_logits(model, data, batch_size=batch_size)
        stats = status_of(logits, data)
        if stats["forgotten"] != 1.0 or not decisive():
            return logits, stats
    logits = forget_logits(model, data, batch_size=batch_size)
    return logits, status_of(logits, data)


def check_finite(model: nn.Module, name: str) -> None:
    """Raise :class:`DivergenceError` if any parameter or buffer is NaN or infinite."""
    for key, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise DivergenceError(
                f"{name}: {key} became NaN or infinite; the input model is untouched. "
                "Lower lr or raise the regularization"
            )


def rescue_bound(config: UnlearnConfig) -> float | None:
    """The gradient-norm bound a diverged run is redone with (``rescue_clip_grad_norm``), or
    ``None``: a method without update steps, ``rescue_clip_grad_norm=0``, or a run already
    bounded at or below it."""
    if not isinstance(config, StepConfig) or config.rescue_clip_grad_norm <= 0:
        return None
    if 0 < config.clip_grad_norm <= config.rescue_clip_grad_norm:
        return None
    return config.rescue_clip_grad_norm


def rescue(
    method: Unlearner,
    error: DivergenceError,
    model: nn.Module,
    data: UnlearnData,
    *,
    progress: bool,
    callback: Callable[[dict[str, float]], None] | None,
    start: float,
) -> UnlearnResult:
    """The run of ``method`` redone once, by a fresh instance with ``clip_grad_norm`` at
    :func:`rescue_bound`, after it diverged with ``error`` (re-raised where there is no rescue);
    ``start`` is the first run's :func:`time.perf_counter`."""
    bound = rescue_bound(method.config)
    if bound is None:
        raise error
    diverged = time.perf_counter() - start
    logger.warning(
        "%s diverged (%s); running it again with the gradient norm bounded at %g",
        method.name, error, bound,
    )  # fmt: skip
    config = dataclasses.replace(method.step_config, clip_grad_norm=bound)
    try:
        result = type(method)(config).unlearn(model, data, progress=progress, callback=callback)
    except DivergenceError as again:
        raise DivergenceError(
            f"{again} (a first run diverged with the gradient unbounded or bounded "
            f"higher, and a second with it bounded at {bound:g}: lower lr)"
        ) from error
    result.rescued_from = str(error)
    result.seconds["diverged"] = diverged
    result.seconds["total"] = time.perf_counter() - start
    return result
