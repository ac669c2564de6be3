"""``random_label`` (RL): fine-tune on the forget set with random wrong labels, then on retained
data with its own labels, round after round."""

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
    alternating_schedule,
    register,
)
from amnesiac.training import augment

SALUN_CODE = "github.com/OPTML-Group/Unlearn-Saliency (read at commit a6e89fd)"


@dataclass(frozen=True, kw_only=True)
class RandomLabelConfig(StepConfig):
    """Settings of ``random_label`` (defaults: the official code's, SalUn's ``unlearn/RL.py``).

    Each of ``epochs`` rounds is one pass over D_f in batches of ``batch_size``, each instance
    labelled with a class drawn afresh from the other classes, then one pass over D_r with its
    labels, capped at ``retain_steps`` steps (0: the whole pass, as the official code). SGD with
    momentum 0.9 and weight decay 5e-4; ``max_steps`` caps the whole run. Unlike the official
    code, whose uniform draw may return the true label, the label is always wrong (the paper's
    definition).

    Augmentation: the official code draws D_f and D_r batches through the model's training
    transform (on CIFAR-10, a random crop after 4 pixels of padding and a horizontal flip).
    amnesiac cannot see how a model was trained, so every batch is left as it is by default
    (right for a model trained without augmentation); to run as the authors did, set
    ``crop_fraction`` and ``flip`` to the model's own recipe (CIFAR-10's: 0.125 and True).

    Attributes:
        epochs: Rounds of forget then retain steps.
        retain_steps: Retained steps per round at most (0: one pass over D_r).
        crop_fraction: Random crop of every batch after zero padding by this share of the
            image side, rounded to whole pixels (0: off).
        flip: Mirror each image of every batch left-right with probability 1/2.
    """

    lr: float = 0.01
    weight_decay: float = 5e-4
    batch_size: int = 256
    max_steps: int = 100_000
    stop: Literal["forgotten", "budget"] = "budget"
    epochs: int = 10
    retain_steps: int = 0
    crop_fraction: float = 0.0
    flip: bool = False

    def problems(self) -> list[str]:
        out = super().problems()
        if self.epochs < 0 or self.retain_steps < 0:
            out.append("epochs and retain_steps must be >= 0")
        if not 0 <= self.crop_fraction < 0.5:
            out.append(f"crop_fraction must be in [0, 0.5), got {self.crop_fraction}")
        return out


def random_wrong_labels(y: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """A label drawn uniformly from the ``num_classes - 1`` classes other than each ``y``.

    Shape:
        ``y``: ``(N,)``; returns ``(N,)`` on ``y``'s device.
    """
    shift = torch.randint(1, num_classes, (len(y),), generator=generator)
    return (y + shift.to(y.device)) % num_classes


@register
class RandomLabel(Unlearner):
    """Cross-entropy toward random wrong labels on D_f, then cross-entropy on D_r, per round.

    A standard baseline of the unlearning literature (the SalUn paper's RL). Its own goal is
    the retrained model's behaviour, with a number of epochs as its stop rule;
    ``stop="forgotten"`` stops at amnesiac's objective instead.
    """

    name = "random_label"
    config_cls = RandomLabelConfig
    reads = ("forget", "retain")
    objectives = ("misclassify",)
    forgets = False  # its stop rule is a number of epochs, not D_f misclassified
    fast_settings: ClassVar[dict[str, Any]] = {"epochs": 3, "batch_size": 32, "retain_steps": 4}
    summary = "random wrong labels on D_f, then cross-entropy on D_r (SalUn's RL baseline)"
    reference = (
        "Golatkar et al., Eternal Sunshine of the Spotless Net, CVPR 2020, arXiv:1911.04933; as "
        f"run by Fan et al., SalUn, ICLR 2024, arXiv:2310.12508 (code: {SALUN_CODE})"
    )
    config: RandomLabelConfig

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.schedule: list[tuple[str, int]] = []

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        c = self.config
        self.schedule = alternating_schedule(
            rounds=c.epochs, forget_rounds=c.epochs,
            n_forget=len(data.forget_x), forget_batch=c.batch_size,
            n_retain=0 if data.retain_x is None else len(data.retain_x),
            retain_batch=c.batch_size, retain_cap=c.retain_steps,
        )  # fmt: skip

    def step_budget(self, data: UnlearnData) -> int:
        return len(self.schedule)

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        c = self.config
        phase, x, y = self.round_batch(data, self.schedule[step - 1], c.batch_size, c.batch_size)
        padding = round(c.crop_fraction * min(x.shape[-2:]))
        if padding or c.flip:
            x = augment(x, padding=padding, flip=c.flip, generator=self.generator)
        if phase == "forget":
            wrong = random_wrong_labels(y, data.num_classes, self.generator)
            lf = F.cross_entropy(model(x), wrong)
            return {"loss": lf, "forget": lf}
        lr_ = F.cross_entropy(model(x), y)
        return {"loss": lr_, "retain": lr_}
