"""``amun``: fine-tune on the forget set together with its nearest adversarial examples, each
labelled with the original model's (wrong) prediction on it (AMUN)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import (
    StepConfig,
    UnlearnConfig,
    UnlearnData,
    Unlearner,
    passes_to_steps,
    register,
)
from amnesiac.ops.nearest_adv import nearest_adversarial


@dataclass(frozen=True, kw_only=True)
class AmunConfig(StepConfig):
    """Settings of ``amun`` (defaults: the official code's, ``adversarial_unlearn.py``: SGD, lr
    0.01, momentum 0.9, weight decay 5e-4, batch 128, 10 epochs, no learning-rate decay within
    them).

    The adversarial examples come from the original model once
    (:func:`amnesiac.ops.nearest_adversarial`: a first L2 radius of ``adv_eps * sqrt(D)`` for
    images of ``D`` values, doubled until the prediction changes, ``adv_steps`` PGD steps per
    radius). The training set is D_f with its true labels
    plus the adversarial examples with their predicted labels (the official ``amun`` without
    remaining data), plus D_r when it is passed (``retain=``, the official default), shuffled
    together; ``adversarial_only`` drops D_f (the official ``advonly``). Unlike the official
    code, D_f is not augmented.

    Attributes:
        epochs: Passes over the training set.
        adv_eps: First radius of the adversarial search as a root-mean-square change per value
            in [0, 1] pixels, so it means the same on any image size: the official 0.04 (L2) on
            32x32 RGB images is 0.04 / sqrt(3072) = 7.2e-4.
        adv_steps: PGD steps per radius.
        adversarial_only: Train on the adversarial examples (and D_r) without D_f.
        retain_sample: At most this many D_r instances join the training set, a seeded sample
            drawn once (0: all of D_r, the official code). With all of D_r, each epoch costs
            about a training epoch; a sample bounds the run like ``retain_steps`` bounds
            ``random_label``'s.
    """

    lr: float = 0.01
    weight_decay: float = 5e-4
    batch_size: int = 128
    max_steps: int = 100_000
    stop: Literal["forgotten", "budget"] = "budget"
    epochs: float = 10.0
    adv_eps: float = 7.2e-4
    adv_steps: int = 50
    adversarial_only: bool = False
    retain_sample: int = 0

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.epochs > 0 or not self.adv_eps > 0 or self.adv_steps < 1:
            out.append("epochs and adv_eps must be > 0 and adv_steps >= 1")
        if self.retain_sample < 0:
            out.append(f"retain_sample must be >= 0, got {self.retain_sample}")
        return out


@register
class Amun(Unlearner):
    """AMUN: training on each forget instance's nearest adversarial example, labelled as the
    model predicts it, lowers the model's confidence on the instance without moving the rest.

    Reads only D_f; uses D_r when given (``accepts``). Its own goal is the retrained model's
    behaviour (D_f is trained on with its true labels too) and its stop rule a number of epochs;
    ``stop="forgotten"`` stops at amnesiac's objective instead.
    """

    name = "amun"
    config_cls = AmunConfig
    accepts = ("retain",)
    objectives = ("misclassify",)
    forgets = False  # D_f keeps its true labels in the training set
    fast_settings: ClassVar[dict[str, Any]] = {"epochs": 3, "adv_steps": 10, "batch_size": 32}
    summary = "fine-tune on D_f and its nearest adversarial examples, as predicted (AMUN)"
    reference = (
        "Ebrahimpour-Boroojeny, Sundaram, Chandrasekaran, Not All Wrong is Bad: Using "
        "Adversarial Examples for Unlearning (AMUN), ICML 2025, arXiv:2503.00917 "
        "(code: github.com/Ali-E/AMUN, read at commit 9e341a9)"
    )
    config: AmunConfig

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.pool_x = torch.empty(0)
        self.pool_y = torch.empty(0, dtype=torch.long)
        self.adv_x = torch.empty(0)  # the adversarial examples and their labels, for inspection
        self.adv_y = torch.empty(0, dtype=torch.long)

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        c = self.config
        radius = c.adv_eps * data.forget_x[0].numel() ** 0.5
        with self.phase("adversarial"), self.autocast(data):
            adv_x, adv_y = nearest_adversarial(
                original, data.forget_x, data.forget_y, eps=radius, steps=c.adv_steps
            )
        xs, ys = [adv_x.to(data.forget_x.dtype)], [adv_y]
        if not c.adversarial_only:
            xs.append(data.forget_x)
            ys.append(data.forget_y)
        if data.retain_x is not None and data.retain_y is not None:
            keep: slice | Tensor = slice(None)
            if 0 < c.retain_sample < len(data.retain_x):
                perm = torch.randperm(len(data.retain_x), generator=self.generator)
                keep = perm[: c.retain_sample].to(data.retain_x.device)
            xs.append(data.retain_x[keep])
            ys.append(data.retain_y[keep])
        self.pool_x, self.pool_y = torch.cat(xs), torch.cat(ys)
        self.adv_x, self.adv_y = adv_x, adv_y

    def step_budget(self, data: UnlearnData) -> int:
        return passes_to_steps(len(self.pool_x), self.config.batch_size, self.config.epochs)

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        idx = self.epoch_batch(
            "pool", len(self.pool_x), self.config.batch_size, step, self.pool_x.device
        )
        ce = F.cross_entropy(model(self.pool_x[idx]), self.pool_y[idx])
        return {"loss": ce, "ce": ce}
