"""What the request page shows about the models: each forget instance's prediction before and
after, test accuracy by class and the confusions that moved. Pure functions of logits, and
:func:`model_outcomes`, which runs the two models once to get them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from amnesiac.data.tensors import as_tensors
from amnesiac.errors import DivergenceError, InvalidSettingsError
from amnesiac.metrics.accuracy import predict_logits
from amnesiac.ops.layout import INFERENCE_BATCH_SIZE
from amnesiac.ops.losses import runner_up

Pair = tuple[Tensor, Tensor]


def instance_outcomes(
    before: Tensor,
    after: Tensor,
    labels: Tensor,
    indices: Sequence[int],
    targets: Tensor | None = None,
) -> list[dict[str, Any]]:
    """Per forget instance: its training index, true label, and the top class with its
    probability (percent) before and after, the true class's probability after, and the
    relabel target if any.

    Shape:
        ``before``, ``after``: logits ``(K, C)``; ``labels``, ``targets``: ``(K,)``.

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> out = instance_outcomes(z, z.flip(1), torch.tensor([0]), [7])[0]
        >>> out["index"], out["before"], out["after"], round(out["after_conf"], 1)
        (7, 0, 1, 88.1)
    """
    if not len(labels) == len(before) == len(after) == len(indices):
        raise InvalidSettingsError(
            f"sizes differ: {len(labels)} labels, {len(before)} and {len(after)} logits, "
            f"{len(indices)} indices"
        )
    pb, pa = before.double().softmax(1), after.double().softmax(1)
    cb, kb = pb.max(1)
    ca, ka = pa.max(1)
    true_after = pa.gather(1, labels[:, None].to(pa.device)).squeeze(1)
    return [
        {
            "index": int(indices[i]),
            "label": int(labels[i]),
            "before": int(kb[i]),
            "before_conf": float(cb[i]) * 100.0,
            "after": int(ka[i]),
            "after_conf": float(ca[i]) * 100.0,
            "after_true_conf": float(true_after[i]) * 100.0,
            "target": None if targets is None else int(targets[i]),
        }
        for i in range(len(labels))
    ]


def class_accuracy(pred: Tensor, labels: Tensor, num_classes: int) -> list[float]:
    """Top-1 accuracy in percent of each class (``nan`` for a class with no example).

    Example:
        >>> class_accuracy(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 3)
        [50.0, 100.0, nan]
    """
    out = []
    for c in range(num_classes):
        mask = labels == c
        n = int(mask.sum())
        out.append(float((pred[mask] == c).sum()) * 100.0 / n if n else math.nan)
    return out


def confusion(pred: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Counts ``(C, C)``: row = true class, column = predicted class."""
    flat = labels.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, -1)


def confusion_changes(
    pred_before: Tensor, pred_after: Tensor, labels: Tensor, num_classes: int, *, top: int = 10
) -> list[dict[str, int]]:
    """The ``top`` off-diagonal cells of the confusion matrix whose count changed most
    (largest absolute change first; cells that did not change are left out).

    Example:
        >>> y = torch.tensor([0, 0, 1])
        >>> confusion_changes(torch.tensor([0, 0, 1]), torch.tensor([1, 0, 1]), y, 2)
        [{'true': 0, 'pred': 1, 'before': 0, 'after': 1, 'change': 1}]
    """
    b = confusion(pred_before, labels, num_classes)
    a = confusion(pred_after, labels, num_classes)
    delta = a - b
    delta.fill_diagonal_(0)
    cells = [
        (abs(int(delta[t, p])), -int(delta[t, p]), t, p)
        for t in range(num_classes)
        for p in range(num_classes)
        if int(delta[t, p]) != 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2], c[3]))
    return [
        {"true": t, "pred": p, "before": int(b[t, p]), "after": int(a[t, p]), "change": -neg}
        for _, neg, t, p in cells[:top]
    ]


def _logits(model: nn.Module, x: Tensor, name: str, what: str, batch_size: int) -> Tensor:
    logits = predict_logits(model, x, batch_size=batch_size).cpu()
    bad = int((~torch.isfinite(logits).all(1)).sum())
    if bad:
        raise DivergenceError(
            f"the {name} model outputs NaN or infinite logits on {bad} of {len(x)} {what} "
            "inputs; it is broken (e.g. diverged training), so there is nothing to report"
        )
    return logits


def model_outcomes(
    original: nn.Module,
    unlearned: nn.Module,
    *,
    forget: Pair,
    test: Pair,
    forget_indices: Sequence[int],
    relabel: bool = False,
    batch_size: int = INFERENCE_BATCH_SIZE,
    test_pred_before: Tensor | None = None,
    test_pred_after: Tensor | None = None,
) -> dict[str, Any]:
    """Run both models on D_f and D_test and gather what the request page shows.

    Args:
        original: The model before unlearning.
        unlearned: The model after.
        forget: D_f ``(x, y)``.
        test: D_test ``(x, y)``.
        forget_indices: D_f's training indices, in the order of ``forget``.
        relabel: The run trained toward targets: add each instance's target, the original
            model's runner-up class (what :func:`amnesiac.unlearn` uses without ``targets=``).
        batch_size: Inference batch size.
        test_pred_before: The original model's predicted classes on D_test, where they are
            known already (a cached evaluation), so it is not run on D_test again.
        test_pred_after: The unlearned model's, likewise (from the run's evaluation).

    Returns:
        A JSON-ready dict: ``instances`` (:func:`instance_outcomes`), ``num_classes``,
        ``class_count`` (D_test examples per class), ``class_acc_before`` and
        ``class_acc_after`` (:func:`class_accuracy` on D_test), ``test_acc_before`` and
        ``test_acc_after``, and ``confusion_changes`` (:func:`confusion_changes` on D_test).

    Raises:
        DivergenceError: A model outputs NaN or infinite logits.
    """
    xf, yf = as_tensors(forget, name="forget")
    xt, yt = as_tensors(test, name="test")
    yf, yt = yf.cpu().long(), yt.cpu().long()
    fb = _logits(original, xf, "original", "forget", batch_size)
    fa = _logits(unlearned, xf, "unlearned", "forget", batch_size)
    if test_pred_before is not None:
        tb = test_pred_before.cpu().long()
    else:
        tb = _logits(original, xt, "original", "test", batch_size).argmax(1)
    if test_pred_after is not None:
        ta = test_pred_after.cpu().long()
    else:
        ta = _logits(unlearned, xt, "unlearned", "test", batch_size).argmax(1)
    num_classes = int(fb.shape[1])
    targets = runner_up(fb, yf) if relabel else None
    return {
        "instances": instance_outcomes(fb, fa, yf, forget_indices, targets),
        "num_classes": num_classes,
        "class_count": torch.bincount(yt, minlength=num_classes).tolist(),
        "class_acc_before": class_accuracy(tb, yt, num_classes),
        "class_acc_after": class_accuracy(ta, yt, num_classes),
        "test_acc_before": float((tb == yt).double().mean()) * 100.0 if len(yt) else math.nan,
        "test_acc_after": float((ta == yt).double().mean()) * 100.0 if len(yt) else math.nan,
        "confusion_changes": confusion_changes(tb, ta, yt, num_classes),
    }
