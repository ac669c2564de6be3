"""``retrain``: train from scratch on the retained data (the gold standard)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from amnesiac.errors import InvalidSettingsError
from amnesiac.methods.base import UnlearnConfig, UnlearnData, Unlearner, register
from amnesiac.training import TrainRecipe, reinitialize, train_classifier


@dataclass(frozen=True, kw_only=True)
class RetrainConfig(UnlearnConfig):
    """Settings of ``retrain``: the pre-training recipe (see :class:`amnesiac.TrainRecipe`).

    Attributes:
        epochs: Passes over the retained data.
        lr: Peak learning rate of the one-cycle schedule.
        batch_size: Training batch size.
        momentum: SGD (Nesterov) momentum.
        weight_decay: Weight decay of the weights (not of biases and BatchNorm).
        crop_padding: Random-crop augmentation padding (0: off).
        flip: Random horizontal flips.
        warmup: Fraction of the steps spent warming up.
    """

    epochs: int = 8
    lr: float = 0.1
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    crop_padding: int = 2
    flip: bool = True
    warmup: float = 0.15

    def recipe(self) -> TrainRecipe:
        return TrainRecipe(
            epochs=self.epochs,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            crop_padding=self.crop_padding,
            flip=self.flip,
            warmup=self.warmup,
            seed=self.seed,
            precision=self.precision,
        )

    def problems(self) -> list[str]:
        out = super().problems()
        try:
            self.recipe()
        except InvalidSettingsError as e:
            out.append(str(e))
        return out


@register
class Retrain(Unlearner):
    """Fresh weights (seeded), then the pre-training recipe on the retained data only.

    The reference every other method is compared with: what the model would be had the forget
    set never been in the training data. Its time is the cost unlearning is meant to avoid.
    """

    data_parallel = True

    name = "retrain"
    fast_settings: ClassVar[dict[str, Any]] = {"epochs": 1}
    forgets = False  # only as far as the retained data implies
    config_cls = RetrainConfig
    reads = ("forget", "retain")
    summary = "retrain from scratch on the retained data (the gold standard)"
    reference = "the exact-unlearning baseline"
    objectives = ("misclassify",)
    iterative = False
    config: RetrainConfig

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        if data.retain_x is None or data.retain_y is None:
            raise InvalidSettingsError("method 'retrain' needs retain data; pass retain=")
        with self.phase("retrain"):
            reinitialize(model, self.config.seed)
            train_classifier(model, data.retain_x, data.retain_y, self.config.recipe())

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        raise NotImplementedError("retrain trains in prepare(); it takes no update steps")
