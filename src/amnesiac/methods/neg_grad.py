"""``neg_grad``: gradient ascent on the forget set (the paper's naive baseline, Case 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import StepConfig, UnlearnData, Unlearner, register
from amnesiac.methods.l2ul import PAPER_URL


@dataclass(frozen=True, kw_only=True)
class NegGradConfig(StepConfig):
    """Settings of ``neg_grad``: the shared ones (SGD lr 1e-3, momentum 0.9, wd 1e-4, as the
    official code)."""


@register
class NegGrad(Unlearner):
    """Gradient ascent on the cross-entropy of the forget set, until none is classified right.

    Loss: ``-CE(model(x_f), y_f)`` on sequential forget batches. Unbounded: it keeps pushing
    every instance after it is misclassified, which is why it damages the rest of the model.

    Example:
        >>> amnesiac.unlearn(model, forget=(x_f, y_f), method="neg_grad").stopped_by
        'forgotten'
    """

    name = "neg_grad"
    fast_settings: ClassVar[dict[str, Any]] = {"max_steps": 100}
    config_cls = NegGradConfig
    summary = "gradient ascent on the forget set (the paper's naive baseline)"
    reference = PAPER_URL
    objectives = ("misclassify",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "lr": 1e-3,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "batch_size": 32,
            "bn_mode": "train",
            "stop": "forgotten",
        }
    }

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        idx = self.forget_batch(data, step)
        lf = -F.cross_entropy(model(data.forget_x[idx]), data.forget_y[idx])
        return {"loss": lf, "forget": lf}
