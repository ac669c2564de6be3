"""Accuracy and predictions: batched inference that leaves the model as it found it."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from amnesiac.ops.layout import INFERENCE_BATCH_SIZE, channels_last_copy


def inference_model(model: nn.Module, x: Tensor) -> nn.Module:
    """The model to run for inference on inputs like ``x``: a channels-last copy of ``model``
    where that layout applies (speed only, :func:`amnesiac.ops.channels_last_copy`), else
    ``model``; ``model`` is never changed. Callers that predict on several sets make it once."""
    if not len(x):
        return model
    p = next(model.parameters(), None)
    probe = x[:1] if p is None else x[:1].to(device=p.device, dtype=p.dtype)
    return channels_last_copy(model, probe)


@torch.inference_mode()
def predict_logits(
    model: nn.Module, x: Tensor, *, batch_size: int = INFERENCE_BATCH_SIZE
) -> Tensor:
    """Logits of ``model`` on ``x`` in eval mode; the model's train/eval mode is restored after.

    Shape:
        ``x``: ``(N, C, H, W)``; returns ``(N, num_classes)`` on ``x``'s device.
    """
    device = next((p.device for p in model.parameters()), x.device)
    dtype = next((p.dtype for p in model.parameters()), x.dtype)
    was_training = model.training
    model.eval()
    try:
        fast = inference_model(model, x)
        outs = [
            fast(x[i : i + batch_size].to(device=device, dtype=dtype))
            for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    if not outs:
        return x.new_zeros((0, 0))
    return torch.cat(outs).to(x.device)


def accuracy_from_logits(logits: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in percent; ``nan`` for an empty set."""
    if len(y) == 0:
        return float("nan")
    return float((logits.argmax(1) == y.to(logits.device)).float().mean().item() * 100.0)


def accuracy(
    model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = INFERENCE_BATCH_SIZE
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in percent (eval mode, no gradients)."""
    if len(y) == 0:
        return float("nan")
    return accuracy_from_logits(predict_logits(model, x, batch_size=batch_size), y)
