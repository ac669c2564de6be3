"""The nearest adversarial example of each input by L2 PGD with a growing radius (AMUN's
search): untargeted PGD at radius ``eps``, stopping each input at its first misclassified
iterate, and doubling the radius for the inputs still correctly classified.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from amnesiac.ops.nearest_adv import nearest_adversarial
    >>> model = nn.Linear(2, 2).eval()
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ...     _ = model.bias.zero_()
    >>> x = torch.tensor([[0.6, 0.4]])  # class 0, 0.14 (L2) from the boundary x0 = x1
    >>> x_adv, label = nearest_adversarial(model, x, torch.tensor([0]), eps=0.04)
    >>> label.tolist(), round(float((x_adv - x).norm()), 2) < 0.3
    ([1], True)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError

__all__ = ["nearest_adversarial"]


def nearest_adversarial(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float = 0.04,
    steps: int = 50,
    max_doublings: int = 12,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """For each input, an adversarial example near it and the model's prediction on it.

    Untargeted L2 PGD on the cross-entropy of ``y`` in [0, 1] pixel space, no random start,
    step ``eps / 10`` along the per-input normalized gradient, projected on the ball of radius
    ``eps`` around the input and clipped to [0, 1]. An input stops at its first iterate that the
    model no longer assigns to ``y``; after ``steps`` steps the radius of the rest doubles and
    PGD goes on from where they are (the official AMUN code). An input already misclassified is
    its own example. After ``max_doublings`` doublings an input still classified as ``y``
    keeps its last iterate (its label is then ``y``).

    Returns:
        ``(x_adv, label)``: the examples and the model's predicted class on each.

    Shape:
        ``x``: ``(N, ...)``; ``y``: ``(N,)``; returns ``(N, ...)`` and ``(N,)``.
    """
    if len(x) != len(y):
        raise InvalidSettingsError(f"x has {len(x)} inputs but y has {len(y)}")
    if not eps > 0 or steps < 1 or max_doublings < 0:
        raise InvalidSettingsError("eps must be > 0, steps >= 1 and max_doublings >= 0")
    xs, labels = [], []
    for i in range(0, len(x), batch_size):
        a, b = _search(model, x[i : i + batch_size].detach(), y[i : i + batch_size], eps, steps,
                       max_doublings)  # fmt: skip
        xs.append(a)
        labels.append(b)
    return torch.cat(xs), torch.cat(labels)


def _search(
    model: nn.Module, x0: Tensor, y: Tensor, eps: float, steps: int, max_doublings: int
) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        pred = model(x0).argmax(1)
    adv = x0.clone()
    done = pred != y
    dims = (1,) * (x0.dim() - 1)
    for _ in range(max_doublings + 1):
        if bool(done.all()):
            break
        alpha = eps / 10
        for _ in range(steps):
            active = (~done).nonzero().flatten()
            if len(active) == 0:
                break
            xa = adv[active].clone().requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(xa).float(), y[active], reduction="sum")
                (g,) = torch.autograd.grad(loss, xa)
            g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *dims)
            delta = xa.detach() + alpha * g - x0[active]
            norm = delta.flatten(1).norm(dim=1).view(-1, *dims)
            delta = delta * (eps / norm.clamp_min(1e-12)).clamp(max=1.0)
            new = (x0[active] + delta).clamp(0, 1)
            adv[active] = new
            with torch.no_grad():
                p = model(new).argmax(1)
            pred[active] = p
            done[active] = p != y[active]
        eps *= 2
    return adv, pred
