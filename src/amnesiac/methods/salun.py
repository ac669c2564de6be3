"""``salun``: random labels (RL) restricted to the salient weights, those whose forget-loss
gradient is largest (SalUn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import UnlearnConfig, UnlearnData, register
from amnesiac.methods.random_label import SALUN_CODE, RandomLabel, RandomLabelConfig


@dataclass(frozen=True, kw_only=True)
class SalUnConfig(RandomLabelConfig):
    """Settings of ``salun``: :class:`RandomLabelConfig` (the official README's lr 0.013 for
    CIFAR-10 random forgetting) plus the share of weights in the saliency mask.

    Attributes:
        mask_ratio: Share of all weights (ranked globally, every layer together) that may change:
            those with the largest ``|gradient|`` of the forget-set cross-entropy at the original
            weights (the official ``with_0.5.pt``: 0.5).
    """

    lr: float = 0.013
    mask_ratio: float = 0.5

    def problems(self) -> list[str]:
        out = super().problems()
        if not 0 < self.mask_ratio <= 1:
            out.append(f"mask_ratio must be in (0, 1], got {self.mask_ratio}")
        return out


def saliency_mask(
    model: nn.Module, x: Tensor, y: Tensor, *, ratio: float, batch_size: int
) -> dict[str, Tensor]:
    """SalUn's weight-saliency mask: 1 for the ``ratio`` share of all weights (one global
    ranking) with the largest ``|∇ CE(D_f)|`` at the current weights, 0 elsewhere.

    The gradient is the sum over batches of ``batch_size`` of the batch-mean cross-entropy's
    gradient (the official ``generate_mask.py``), taken in eval mode; ``model`` is left as it was
    (its ``.grad`` untouched).

    Returns:
        ``{name: mask}`` for every parameter with ``requires_grad``, each of its shape and dtype.
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            loss = F.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size])
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for n, g in zip(params, grads, strict=True):
                if g is not None:
                    total[n] += g
    finally:
        model.train(was_training)
    flat = torch.cat([g.abs().flatten() for g in total.values()])
    keep = int(len(flat) * ratio)
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    chosen[torch.topk(flat, keep).indices] = True
    out, start = {}, 0
    for n, g in total.items():
        out[n] = chosen[start : start + g.numel()].view_as(g).to(g.dtype)
        start += g.numel()
    return out


@register
class SalUn(RandomLabel):
    """Random labels on D_f and cross-entropy on D_r, updating only the salient weights.

    The mask is computed once from the original model; every step's gradient, weight decay
    included, is multiplied by it, so the other weights keep their original values exactly
    (``θ = m ⊙ (θ0 + Δθ) + (1 - m) ⊙ θ0``, the paper's equation; the official code enforces it
    since its weight-decay fix). BatchNorm running statistics are buffers, not weights: in
    ``bn_mode="train"`` they move as in the official code.
    """

    name = "salun"
    config_cls = SalUnConfig
    summary = "random labels restricted to the weights salient for D_f (SalUn)"
    reference = (
        "Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in "
        "Both Image Classification and Generation, ICLR 2024, arXiv:2310.12508 "
        f"(code: {SALUN_CODE})"
    )
    fast_settings: ClassVar[dict[str, Any]] = {**RandomLabel.fast_settings}
    config: SalUnConfig

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.mask: dict[str, Tensor] = {}

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        super().prepare(model, original, data)
        with self.phase("saliency"):
            self.mask = saliency_mask(
                model,
                data.forget_x,
                data.forget_y,
                ratio=self.config.mask_ratio,
                batch_size=self.config.batch_size,
            )

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        c = self.config  # weight decay goes through the mask in backward
        return torch.optim.SGD(
            model.parameters(), lr=self.lr, momentum=c.momentum, weight_decay=0.0
        )

    def backward(self, model: nn.Module, parts: dict[str, Tensor]) -> None:
        parts["loss"].backward()
        wd = self.config.weight_decay
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.grad is not None and n in self.mask:
                    p.grad.add_(p, alpha=wd).mul_(self.mask[n])
