"""``finetune``: fine-tune on retained data only, relying on catastrophic forgetting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import UnlearnConfig, UnlearnData, Unlearner, register


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(UnlearnConfig):
    """Settings of ``finetune``.

    Attributes:
        retain_batch_size: Retained examples per step.
    """

    lr: float = 1e-2
    max_steps: int = 500
    stop: Literal["forgotten", "budget"] = "budget"
    retain_batch_size: int = 128

    def problems(self) -> list[str]:
        out = super().problems()
        if self.retain_batch_size < 1:
            out.append(f"retain_batch_size must be >= 1, got {self.retain_batch_size}")
        return out


@register
class Finetune(Unlearner):
    """Cross-entropy on retained data for a step budget; the forget set is never trained on.

    A common baseline (Golatkar et al. 2020; Jia et al. 2023): forgetting happens only as far as
    further training overwrites what the forget instances taught.
    """

    name = "finetune"
    config_cls = FinetuneConfig
    reads = ("forget", "retain")
    summary = "fine-tune on retained data only (forgets by overwriting)"
    reference = "Golatkar et al., Eternal Sunshine of the Spotless Net, CVPR 2020"
    objectives = ("misclassify",)
    config: FinetuneConfig

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        xr, yr = self.retain_batch(data, self.config.retain_batch_size)
        lr_ = F.cross_entropy(model(xr), yr)
        return {"loss": lr_, "retain": lr_}
