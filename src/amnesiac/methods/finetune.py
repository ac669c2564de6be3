"""``finetune``: fine-tune on retained data only, relying on catastrophic forgetting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import StepConfig, UnlearnData, Unlearner, register


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(StepConfig):
    """Settings of ``finetune`` (it never trains on the forget set).

    Attributes:
        batch_size: Retained examples per step.
    """

    lr: float = 1e-2
    max_steps: int = 500
    batch_size: int = 128
    stop: Literal["forgotten", "budget"] = "budget"


@register
class Finetune(Unlearner):
    """Cross-entropy on retained data for a step budget; the forget set is never trained on.

    A common baseline (Golatkar et al. 2020; Jia et al. 2023): forgetting happens only as far as
    further training overwrites what the forget instances taught.
    """

    name = "finetune"
    fast_settings: ClassVar[dict[str, Any]] = {"max_steps": 4}
    forgets = False  # only as far as the retained data implies
    config_cls = FinetuneConfig
    reads = ("forget", "retain")
    summary = "fine-tune on retained data only (forgets by overwriting)"
    reference = "Golatkar et al., Eternal Sunshine of the Spotless Net, CVPR 2020"
    objectives = ("misclassify",)
    config: FinetuneConfig

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        xr, yr = self.retain_batch(data, self.config.batch_size)
        lr_ = F.cross_entropy(model(xr), yr)
        return {"loss": lr_, "retain": lr_}
