"""Forget objectives as pure functions of logits."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError

ForgetLoss = Literal["neg_ce", "margin", "runner_up"]


def other_max(logits: Tensor, label: Tensor) -> Tensor:
    """Largest logit among the classes other than ``label``.

    Shape:
        ``logits``: ``(N, C)``; ``label``: ``(N,)``; returns ``(N,)``.
    """
    masked = logits.masked_fill(F.one_hot(label, logits.shape[1]).bool(), float("-inf"))
    return masked.max(1).values


def margin_hinge(logits: Tensor, label: Tensor, *, margin: float, toward: bool) -> Tensor:
    """Each instance's hinge on the logit margin: how far it is from being past the boundary
    by ``margin`` (positive), or past it (negative; :func:`margin_loss` clips these to zero).

    ``toward=False`` (misclassify): ``z_label - max_{j != label} z_j + margin``.
    ``toward=True`` (relabel to ``label``): ``max_{j != label} z_j - z_label + margin``.

    Shape:
        ``logits``: ``(N, C)``; ``label``: ``(N,)``; returns ``(N,)``.

    Example:
        >>> logits = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
        >>> margin_hinge(logits, torch.tensor([0, 0]), margin=1.0, toward=False).tolist()
        [3.0, -1.0]
    """
    z = logits.gather(1, label[:, None]).squeeze(1)
    gap = z - other_max(logits, label)
    return (-gap if toward else gap) + margin


def margin_loss(
    logits: Tensor,
    label: Tensor,
    *,
    margin: float,
    toward: bool,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Hinge on the logit margin, zero once an instance is past the boundary by ``margin``:
    the mean (or sum) over the batch of ``relu`` of :func:`margin_hinge`.

    Shape:
        ``logits``: ``(N, C)``; ``label``: ``(N,)``; returns a scalar.
    """
    hinge = F.relu(margin_hinge(logits, label, margin=margin, toward=toward))
    return hinge.sum() if reduction == "sum" else hinge.mean()


def runner_up(logits: Tensor, label: Tensor) -> Tensor:
    """The highest-scoring class other than ``label`` (the nearest wrong class).

    Shape:
        ``logits``: ``(N, C)``; ``label``: ``(N,)``; returns ``(N,)`` int64.
    """
    masked = logits.masked_fill(F.one_hot(label, logits.shape[1]).bool(), float("-inf"))
    return masked.argmax(1)


def forget_loss(
    logits: Tensor,
    label: Tensor,
    *,
    kind: ForgetLoss,
    target: Tensor | None = None,
    margin: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """The loss that makes a forget batch meet its objective (lower is more forgotten).

    Args:
        logits: Model outputs on the forget batch.
        label: True labels.
        kind: ``"neg_ce"``: gradient ascent on the cross-entropy of the true label (the paper;
            unbounded). ``"runner_up"``: cross-entropy toward ``target``. ``"margin"``: hinge on
            the logit margin (see :func:`margin_loss`), toward ``target`` if given, else away from
            ``label``.
        target: Per-instance target labels (relabel, or the original model's runner-up class).
        margin: Logit margin of ``"margin"``.
        reduction: ``"mean"`` or ``"sum"`` over the batch.

    Shape:
        ``logits``: ``(N, C)``; ``label``, ``target``: ``(N,)``; returns a scalar.
    """
    if kind == "neg_ce":
        if target is not None:
            return F.cross_entropy(logits, target, reduction=reduction)
        return -F.cross_entropy(logits, label, reduction=reduction)
    if kind == "runner_up":
        if target is None:
            raise InvalidSettingsError("forget loss 'runner_up' needs target labels")
        return F.cross_entropy(logits, target, reduction=reduction)
    if kind == "margin":
        if target is not None:
            return margin_loss(logits, target, margin=margin, toward=True, reduction=reduction)
        return margin_loss(logits, label, margin=margin, toward=False, reduction=reduction)
    raise InvalidSettingsError(
        f"unknown forget loss {kind!r}; use one of {list(get_args(ForgetLoss))}"
    )


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Cross-entropy against soft targets (distillation), mean over the batch."""
    return -(target_probs * torch.log_softmax(logits, 1)).sum(1).mean()


def distill_kl(student: Tensor, teacher: Tensor, *, temperature: float = 1.0) -> Tensor:
    """KL divergence from the teacher's softened distribution to the student's, mean over the
    batch and scaled by ``temperature**2`` (Hinton et al. 2015; SCRUB's ``DistillKL``).

    ``KL(softmax(teacher / T) || softmax(student / T)) * T**2``; zero when the logits agree up to
    a per-row constant.

    Shape:
        ``student``, ``teacher``: ``(N, C)`` logits; returns a scalar.
    """
    t = temperature
    return (
        F.kl_div(
            torch.log_softmax(student.float() / t, 1),
            torch.log_softmax(teacher.float() / t, 1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )
