"""``scar``: push each forget instance's features toward the nearest other class (Mahalanobis)
while distilling the original model on unlabeled surrogate images (SCAR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError
from amnesiac.methods.base import StepConfig, UnlearnConfig, UnlearnData, Unlearner, register
from amnesiac.ops.features import penultimate_features
from amnesiac.ops.mahalanobis import ClassStatistics, class_statistics, mahalanobis


@dataclass(frozen=True, kw_only=True)
class ScarConfig(StepConfig):
    """Settings of ``scar`` (defaults: the official code's, ``opts.py``: Adam, lr 5e-4, batches
    of 1024, up to 30 epochs, ``lambda_1`` 1, ``lambda_2`` 5, temperature 1, ``delta`` 0.5,
    ``gamma1 = gamma2 = 3``, 6 surrogate batches per forget batch).

    An epoch is, for each forget batch of ``batch_size``, ``surrogate_steps`` steps, each with
    a surrogate batch of ``surrogate_batch_size`` drawn with replacement so that every class
    the original model predicts on the surrogate images is equally likely. The class
    statistics come from the surrogate images labelled by the original model's predictions
    (the official code computes them on D_r, which a forget-only request does not have).

    Attributes:
        epochs: Epochs at most (``max_steps`` caps the steps too).
        surrogate_batch_size: Surrogate images per step.
        surrogate_steps: Steps per forget batch and epoch (the official ``num_retain_samp + 1``).
        forget_weight: ``lambda_1``, weight of the Mahalanobis forget term.
        distill_weight: ``lambda_2``, weight of the distillation on surrogate images.
        temperature: Temperature of the teacher's softmax (the student's is 1, as the code).
        delta: Power of the features before the statistics (Tukey's transform).
        gamma1: Shrinkage of the covariance's diagonal.
        gamma2: Shrinkage of its off-diagonal.
        class_threshold: A class whose forget instances are right less often than this share
            stops pushing them (the official 0.8).
        stop_acc: The paper's stop: forget-set accuracy (percent) under which the run ends,
            checked from the third epoch. Negative: the original model's mean top-1 confidence
            on the surrogate images (a label-free estimate of its held-out accuracy) minus 1.5,
            as the paper's "test accuracy minus 1.5" without test labels. Ignored with
            ``stop="forgotten"``.
    """

    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 1024
    max_steps: int = 100_000
    stop: Literal["forgotten", "budget"] = "budget"
    epochs: int = 30
    surrogate_batch_size: int = 1024
    surrogate_steps: int = 6
    forget_weight: float = 1.0
    distill_weight: float = 5.0
    temperature: float = 1.0
    delta: float = 0.5
    gamma1: float = 3.0
    gamma2: float = 3.0
    class_threshold: float = 0.8
    stop_acc: float = -1.0

    def problems(self) -> list[str]:
        out = super().problems()
        for name in ("epochs", "surrogate_batch_size", "surrogate_steps"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.temperature > 0 or not self.delta > 0:
            out.append("temperature and delta must be > 0")
        if min(self.forget_weight, self.distill_weight, self.gamma1, self.gamma2) < 0:
            out.append("forget_weight, distill_weight, gamma1 and gamma2 must be >= 0")
        return out

    def unused_settings(self) -> dict[str, str]:
        reason = "the method's Adam optimizer (the official code's) does not take it"
        return {**super().unused_settings(), **{n: reason for n in ("momentum",)}}


@register
class Scar(Unlearner):
    """SCAR: each forget instance's penultimate features are pulled (squared Mahalanobis
    distance) to the nearest class other than its own, fixed at the start, while the model's
    outputs on unlabeled surrogate images are distilled from the original model; no retained
    data enters a step. The features are the model's ``features()`` where it has one, else the
    input of its last ``nn.Linear`` (:func:`amnesiac.ops.features.penultimate_features`).

    Its own goal is the retrained model's behaviour (forget accuracy near the test accuracy,
    see ``stop_acc``); ``stop="forgotten"`` stops at amnesiac's objective instead, which the
    class threshold may keep it from reaching.
    """

    name = "scar"
    config_cls = ScarConfig
    reads = ("forget", "surrogate")
    objectives = ("misclassify",)
    forgets = False  # stops near the test accuracy, not at 0
    fast_settings: ClassVar[dict[str, Any]] = {
        "epochs": 2,
        "surrogate_batch_size": 64,
        "surrogate_steps": 2,
    }
    summary = "Mahalanobis push to the nearest class + distillation on surrogate images (SCAR)"
    reference = (
        "Bonato, Cotogni, Sabetta, Is Retain Set All You Need in Machine Unlearning? Restoring "
        "Performance of Unlearned Models with Out-Of-Distribution Images (SCAR), ECCV 2024, "
        "arXiv:2404.12922 (code: github.com/jbonato1/SCAR, read at commit 280ceae)"
    )
    config: ScarConfig

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.stats: ClassStatistics | None = None
        self.teacher_logits = torch.empty(0)
        self.weights = torch.empty(0)
        self.targets = torch.empty(0, dtype=torch.long)
        self.stop_at = 0.0
        self.per_epoch = 1

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=c.weight_decay)

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        c = self.config
        sx = data.surrogate_x
        if sx is None:
            raise InvalidSettingsError("scar reads surrogate images; pass surrogate=")

        def features(x: Tensor) -> Tensor:
            return penultimate_features(original, x)

        with self.phase("statistics"), torch.no_grad(), self.autocast(data):
            chunks = range(0, len(sx), c.surrogate_batch_size)
            logits = torch.cat([original(sx[i : i + c.surrogate_batch_size]) for i in chunks])
            feats = torch.cat([features(sx[i : i + c.surrogate_batch_size]) for i in chunks])
            pred = logits.argmax(1)
            self.stats = class_statistics(
                feats.float(), pred, num_classes=data.num_classes, delta=c.delta,
                gamma1=c.gamma1, gamma2=c.gamma2,
            )  # fmt: skip
            dist = mahalanobis(features(data.forget_x).float(), self.stats)
            dist = dist.scatter(1, data.forget_y[:, None], float("inf"))
            self.targets = dist.argmin(1)
        self.teacher_logits = logits.float()
        counts = torch.bincount(pred, minlength=data.num_classes).float()
        counts[counts < 3] = 5.0
        self.weights = (1.0 / counts)[pred].cpu()
        confidence = logits.float().softmax(1).max(1).values.mean() * 100
        self.stop_at = c.stop_acc if c.stop_acc >= 0 else float(confidence) - 1.5
        self.per_epoch = -(-len(data.forget_x) // c.batch_size) * c.surrogate_steps

    def step_budget(self, data: UnlearnData) -> int:
        return self.config.epochs * self.per_epoch

    def is_done(self, forgotten: bool, step: int) -> bool:
        if self.config.stop == "forgotten":
            return super().is_done(forgotten, step)
        past_two_epochs = step > 2 * self.per_epoch
        return past_two_epochs and self.status.get("forget_acc", 100.0) < self.stop_at

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        assert self.stats is not None and data.surrogate_x is not None  # set in prepare
        c = self.config
        ordinal = (step - 1) // c.surrogate_steps + 1
        idx = self.epoch_batch("forget", len(data.forget_x), c.batch_size, ordinal,
                               data.forget_x.device)  # fmt: skip
        x, y = data.forget_x[idx], data.forget_y[idx]
        weight = self._class_weights(model, data)[y]
        dist = mahalanobis(penultimate_features(model, x).float(), self.stats)
        lf = (weight * dist.gather(1, self.targets[idx][:, None]).squeeze(1)).mean()
        s_idx = torch.multinomial(
            self.weights, c.surrogate_batch_size, replacement=True, generator=self.generator
        ).to(data.surrogate_x.device)
        teacher = (self.teacher_logits[s_idx] / c.temperature).log_softmax(1)
        student = model(data.surrogate_x[s_idx]).float().log_softmax(1)
        ld = F.kl_div(student, teacher, log_target=True, reduction="batchmean")
        loss = c.forget_weight * lf + c.distill_weight * ld
        return {"loss": loss, "forget": lf, "distill": ld}

    @torch.no_grad()
    def _class_weights(self, model: nn.Module, data: UnlearnData) -> Tensor:
        """Per class, the share of its forget instances still right, zero under the threshold."""
        was = model.training
        model.eval()
        try:
            right = (model(data.forget_x).argmax(1) == data.forget_y).float()
        finally:
            model.train(was)
        n = data.num_classes
        hits = torch.zeros(n, device=right.device).index_add_(0, data.forget_y, right)
        total = torch.bincount(data.forget_y, minlength=n).float().clamp_min(1)
        acc = hits / total
        return torch.where(acc < self.config.class_threshold, torch.zeros_like(acc), acc)
