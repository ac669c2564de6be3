"""Selective Synaptic Dampening (SSD): per-parameter importances and the dampening that shrinks
the parameters far more important to the forget set than to the whole training set.

Foster, Schoepf and Brintrup (AAAI 2024) score each parameter by the diagonal of the Fisher
information, estimated as the squared minibatch gradient of the cross-entropy averaged over the
batches, once on the forget set D_f and once on the full training set D. A parameter with
``[]_Df > alpha * []_D`` is multiplied by ``min(lambda * []_D / []_Df, 1)``. The loss-free
variant (LF-SSD, Foster et al., ICLR 2024 Tiny Papers) needs no labels: the absolute minibatch
gradient of the squared L2 norm of the output.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from amnesiac.ops.dampen import ssd_dampen
    >>> layer = nn.Linear(2, 1, bias=False)
    >>> _ = layer.weight.data.copy_(torch.tensor([[1.0, 1.0]]))
    >>> full = {"weight": torch.tensor([[1.0, 1.0]])}
    >>> forget = {"weight": torch.tensor([[20.0, 5.0]])}  # only the first is 10x more important
    >>> ssd_dampen(layer, full, forget, alpha=10.0, lam=1.0)
    1
    >>> layer.weight.data.tolist()
    [[0.05000000074505806, 1.0]]
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError

__all__ = ["ssd_dampen", "ssd_importance"]

ImportanceKind = Literal["fisher", "output_norm"]


def ssd_importance(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    *,
    kind: ImportanceKind = "fisher",
    batch_size: int = 128,
) -> dict[str, Tensor]:
    """SSD's per-parameter importance of ``model`` on ``x``, the model in eval mode.

    * ``"fisher"`` (SSD; needs ``y``): for each batch, the squared gradient of the batch-mean
      cross-entropy; the mean over the batches.
    * ``"output_norm"`` (LF-SSD; labels unused): for each batch, the absolute gradient of the
      batch mean of ``||f(x)||_2^2``; the mean over the batches.

    The estimates are of the official code: minibatch gradients (not per-sample), averaged over
    the number of batches, so they depend on ``batch_size``. ``model`` is left as it was (mode,
    ``.grad``).

    Returns:
        ``{name: importance}`` for every parameter with ``requires_grad``.
    """
    if kind == "fisher" and y is None:
        raise InvalidSettingsError(
            "importance 'fisher' needs labels; use 'output_norm' without them"
        )
    if len(x) == 0:
        raise InvalidSettingsError("cannot compute importances on an empty set")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()
    batches = 0
    try:
        for i in range(0, len(x), batch_size):
            out = model(x[i : i + batch_size])
            if kind == "fisher":
                assert y is not None
                loss = F.cross_entropy(out, y[i : i + batch_size])
            else:
                loss = out.float().pow(2).sum(1).mean()
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for n, g in zip(params, grads, strict=True):
                if g is not None:
                    total[n] += g.pow(2) if kind == "fisher" else g.abs()
            batches += 1
    finally:
        model.train(was_training)
    return {n: (t / batches).detach() for n, t in total.items()}


@torch.no_grad()
def ssd_dampen(
    model: nn.Module,
    full: dict[str, Tensor],
    forget: dict[str, Tensor],
    *,
    alpha: float,
    lam: float,
) -> int:
    """Dampen, in place, every parameter whose forget importance exceeds ``alpha`` times its
    full-data importance: multiply it by ``min(lam * full / forget, 1)`` (never grown).

    Returns:
        The number of scalar parameters dampened.
    """
    changed = 0
    for n, p in model.named_parameters():
        if n not in full or n not in forget:
            continue
        f, d = forget[n], full[n]
        chosen = f > alpha * d
        factor = (lam * d / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1.0)
        p.mul_(torch.where(chosen, factor, torch.ones_like(factor)))
        changed += int(chosen.sum())
    return changed
