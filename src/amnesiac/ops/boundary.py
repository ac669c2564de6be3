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

__all__ = ["boundary_distances", "nearest_boundary_class", "spread_targets"]


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
        y = label[active]
        n = torch.arange(len(y), device=y.device)
        logits, f, w, dist = _linearized(model, x0[active] + (1 + overshoot) * r_total[active], y)
        pred = logits.argmax(1)
        crossed = pred != y
        result[active[crossed]] = pred[crossed]
        nearest = dist.argmin(1)
        fallback[active] = nearest
        w_norm = w[n, nearest].norm(dim=1).clamp_min(1e-12)
        step = ((f[n, nearest].abs() + 1e-4) / w_norm.pow(2))[:, None] * w[n, nearest]
        step[crossed] = 0
        r_total[active] += step.view_as(x0[active])
    return torch.where(result < 0, fallback, result)


def _linearized(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The model linearized at ``x``: its logits, ``f_j = z_j - z_y``, their input gradients
    ``w_j`` (flattened) and the L2 distance ``|f_j| / ||w_j||`` to each linearized boundary
    (``inf`` at ``y``). One backward pass per class."""
    xa = x.detach().requires_grad_(True)
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
    n = torch.arange(len(y), device=y.device)
    f = logits - logits[n, y][:, None]
    w = grads.float() - grads.float()[n, y][:, None]
    dist = f.abs() / w.norm(dim=2).clamp_min(1e-12)
    dist[n, y] = float("inf")
    return logits, f, w, dist


def boundary_distances(
    model: nn.Module, x: Tensor, label: Tensor, *, batch_size: int = 256
) -> Tensor:
    """First-order L2 distance from each input to the boundary of each other class: ``|z_j -
    z_y| / ||∇(z_j - z_y)||`` at the input (``inf`` at its own class ``label``). ``model`` is
    only read.

    Shape:
        ``x``: ``(N, ...)``; ``label``: ``(N,)``; returns ``(N, C)`` float32.
    """
    if len(x) != len(label):
        raise InvalidSettingsError(f"x has {len(x)} inputs but label has {len(label)}")
    out = [
        _linearized(model, x[i : i + batch_size], label[i : i + batch_size])[3]
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else x.new_empty(0, 0)


def spread_targets(preferred: Tensor, distances: Tensor, cap: int) -> Tensor:
    """Targets with at most ``cap`` inputs per class: each input keeps its ``preferred`` class
    while that class has room, clearest first (smallest distance to it); the others take the
    nearest class with room, again clearest pair first. Greedy over (input, class) pairs.

    Never fails when ``cap * (C - 1) >= N``: an input can lack room only if every class but
    its own (``inf`` in ``distances``) is full, which takes more than ``N - 1`` other inputs.

    Args:
        preferred: Each input's first choice (``(N,)``, never its own class).
        distances: ``(N, C)`` distance of each input to each class, ``inf`` where it may not go.
        cap: Most inputs any class receives.

    Shape:
        returns ``(N,)`` int64 on ``preferred``'s device.
    """
    n, classes = distances.shape
    if cap * (classes - 1) < n:
        raise InvalidSettingsError(
            f"a cap of {cap} per class cannot place {n} inputs among {classes - 1} classes"
        )
    d = distances.detach().double().cpu()
    pref = preferred.cpu()
    first = torch.argsort(d[torch.arange(n), pref], stable=True)
    pairs = [(int(i), int(pref[i])) for i in first]  # preferred pairs first, clearest first
    pairs += [divmod(int(f), classes) for f in torch.argsort(d.flatten(), stable=True)]
    target = [-1] * n
    room = [cap] * classes
    left = n
    for i, j in pairs:
        if target[i] >= 0 or room[j] == 0 or d[i, j] == float("inf"):
            continue
        target[i], room[j], left = j, room[j] - 1, left - 1
        if left == 0:
            break
    return torch.tensor(target, dtype=torch.long, device=preferred.device)
