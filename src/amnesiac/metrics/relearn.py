"""Relearn time: how many fine-tuning steps bring the forget set back.

A model that only hid D_f (e.g. by moving a decision boundary a little) relearns it in a few
steps; a model that never learned it needs about as many as a retrained model.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError
from amnesiac.metrics.accuracy import accuracy


def relearn_steps(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    target_acc: float,
    lr: float = 1e-3,
    momentum: float = 0.9,
    batch_size: int = 32,
    max_steps: int = 200,
    seed: int = 0,
) -> int:
    """Steps of plain SGD fine-tuning on ``(x, y)`` until accuracy on it reaches ``target_acc``.

    Works on a copy (the model is not changed). BatchNorm stays in eval mode, so only the weights
    relearn. Accuracy is checked before the first step (0 when already reached) and after every
    step.

    Args:
        model: The model to fine-tune (a copy is used).
        x: Forget-set images.
        y: Forget-set labels.
        target_acc: Accuracy to reach, in percent (usually the original model's on D_f).
        lr: Learning rate.
        momentum: SGD momentum.
        batch_size: Examples per step (cycled in a seeded random order).
        max_steps: Cap; returns ``max_steps + 1`` when not reached (a censored value).
        seed: Seed of the batch order.
    """
    if max_steps < 0 or batch_size < 1:
        raise InvalidSettingsError("max_steps must be >= 0 and batch_size >= 1")
    if accuracy(model, x, y) >= target_acc:
        return 0
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    for step in range(1, max_steps + 1):
        start = ((step - 1) * batch_size) % len(y)
        idx = order[torch.arange(start, start + min(batch_size, len(y))) % len(y)]
        loss = F.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if accuracy(m, x, y) >= target_acc:
            return step
    return max_steps + 1
