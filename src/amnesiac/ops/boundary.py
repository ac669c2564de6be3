"""The nearest decision boundary of each input: DeepFool's path and the class it crosses into.

DeepFool (Moosavi-Dezfooli et al., CVPR 2016) linearizes the classifier at the current point,
steps to the nearest linearized boundary (the smallest L2 step), and repeats until the
prediction changes. The class it lands in is the class of the nearest adversarial example, the
local target of a forget instance: the smallest change of the input that changes the prediction
reaches it (AMUN, Ebrahimpour-Boroojeny et al. 2025, relabels with such examples).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from amnesiac.ops import nearest_boundary_class
    >>> model = nn.Linear(2, 3).eval()
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]))
    ...     _ = model.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    >>> x = torch.zeros(1, 2)  # logits (1, 0, 0): class 1 is 1 away, class 2 is 1/3 away
    >>> nearest_boundary_class(model, x, torch.tensor([0])).tolist()
    [2]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from amnesiac.errors import InvalidSettingsError

__all__ = ["nearest_boundary_class"]


def nearest_boundary_class(
    model: nn.Module,
    x: Tensor,
    label: Tensor,
    *,
    steps: int = 50,
    overshoot: float = 0.02,
    batch_size: int = 256,
) -> Tensor:
    """For each input, the class DeepFool's path crosses into (its nearest wrong class in L2).

    Every step computes the gradients of all logits (one backward pass per class), so the cost
    is ``steps * C`` backward passes of a batch at most; inputs stop as soon as their prediction
    changes. An input still on its side after ``steps`` gets the class of the nearest
    linearized boundary at its last point. ``model`` is only read (no parameter gradients).

    Args:
        model: Classifier in the mode it should be attacked in (normally ``eval``).
        x: Inputs.
        label: The class each input starts from (normally the model's prediction or the true
            label); the result never equals it.
        steps: DeepFool iterations at most.
        overshoot: How far past each linearized boundary a step goes (DeepFool's 0.02).
        batch_size: Inputs attacked at once (speed only).

    Shape:
        ``x``: ``(N, ...)``; ``label``: ``(N,)``; returns ``(N,)`` int64.
    """
    if len(x) != len(label):
        raise InvalidSettingsError(f"x has {len(x)} inputs but label has {len(label)}")
    if steps < 1:
        raise InvalidSettingsError(f"steps must be >= 1, got {steps}")
    out = [
        _nearest(model, x[i : i + batch_size], label[i : i + batch_size], steps, overshoot)
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else label.new_empty(0)


def _nearest(model: nn.Module, x: Tensor, label: Tensor, steps: int, overshoot: float) -> Tensor:
    x0 = x.detach()
    r_total = torch.zeros_like(x0)
    result = torch.full_like(label, -1)
    fallback = label.clone()  # the nearest linearized boundary's class at the last point
    rows = torch.arange(len(x0), device=x0.device)
    for _ in range(steps):
        active = rows[result < 0]
        if len(active) == 0:
            break
        xa = (x0[active] + (1 + overshoot) * r_total[active]).requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa).float()
            grads = torch.stack(
                [
                    torch.autograd.grad(logits[:, j].sum(), xa, retain_graph=True)[0]
                    for j in range(logits.shape[1])
                ],
                dim=1,
            ).flatten(2)  # (n, C, D)
        logits = logits.detach()
        y = label[active]
        n = torch.arange(len(y), device=y.device)
        pred = logits.argmax(1)
        crossed = pred != y
        result[active[crossed]] = pred[crossed]
        # the nearest linearized boundary: |f_j| / ||w_j|| with f_j = z_j - z_y, w_j its gradient
        f = logits - logits[n, y][:, None]
        w = grads - grads[n, y][:, None]
        w_norm = w.norm(dim=2).clamp_min(1e-12)
        dist = f.abs() / w_norm
        dist[n, y] = float("inf")
        nearest = dist.argmin(1)
        fallback[active] = nearest
        step = ((f[n, nearest].abs() + 1e-4) / w_norm[n, nearest].pow(2))[:, None] * w[n, nearest]
        step[crossed] = 0
        r_total[active] += step.view_as(x0[active])
    return torch.where(result < 0, fallback, result)
