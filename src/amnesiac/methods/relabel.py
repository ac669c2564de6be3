"""``relabel``: train the forget set toward target labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import StepConfig, UnlearnConfig, UnlearnData, Unlearner, register
from amnesiac.methods.l2ul import PAPER_URL
from amnesiac.ops.losses import runner_up


@dataclass(frozen=True, kw_only=True)
class RelabelConfig(StepConfig):
    """Settings of ``relabel`` (the shared ones)."""


@register
class Relabel(Unlearner):
    """Cross-entropy toward a target label for each forget instance.

    Targets are given per instance (``targets=`` of :func:`amnesiac.unlearn`, objective
    ``"relabel"``), or else the original model's runner-up class, the nearest wrong class.
    With ``objective="misclassify"`` the run stops once no instance keeps its true label;
    with ``"relabel"`` once every instance is predicted as its target. A bounded objective:
    unlike gradient ascent it stops pulling once an instance is on its target.
    """

    name = "relabel"
    fast_settings: ClassVar[dict[str, Any]] = {"max_steps": 100}
    config_cls = RelabelConfig
    summary = "cross-entropy toward target labels (given, or the runner-up class)"
    reference = PAPER_URL
    trains_to_targets = True

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.targets: Tensor | None = None

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        if data.targets is not None:
            self.targets = data.targets
        else:
            with torch.no_grad(), self.autocast(data):
                self.targets = runner_up(original(data.forget_x), data.forget_y)

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        assert self.targets is not None  # set by prepare
        idx = self.forget_batch(data, step)
        lf = F.cross_entropy(model(data.forget_x[idx]), self.targets[idx])
        return {"loss": lf, "forget": lf}
