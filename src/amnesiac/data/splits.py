"""The :class:`Splits` every dataset loader returns, and the helper that builds it.

:func:`make_splits` turns images (float32 in [0, 1] or uint8 pixels) and labels into a checked
:class:`Splits`, computing the per-channel mean and standard deviation of the training images (for
the model's ``Normalize`` layer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from amnesiac.errors import InvalidSettingsError

__all__ = ["Splits", "make_splits"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset's train and test splits as tensors, with class names and channel statistics.

    Attributes:
        name: The dataset name it was loaded by, e.g. ``"fashion-mnist"``.
        train_x: Training images.
        train_y: Training labels.
        test_x: Test images.
        test_y: Test labels.
        classes: Class names; label ``i`` means ``classes[i]``.
        mean: Per-channel mean of ``train_x``.
        std: Per-channel standard deviation of ``train_x`` (population, never 0).

    Shape:
        - train_x, test_x: ``(N, C, H, W)`` float32 in [0, 1].
        - train_y, test_y: ``(N,)`` int64 in ``[0, num_classes)``.

    Raises:
        InvalidSettingsError: If shapes, dtypes, labels or statistics do not fit together.

    Example:
        >>> from amnesiac.data import load_dataset
        >>> splits = load_dataset("digits")
        >>> splits.input_shape, splits.num_classes, len(splits.train())
        ((1, 8, 8), 10, 1347)
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        problems: list[str] = []
        for split, x, y in (
            ("train", self.train_x, self.train_y),
            ("test", self.test_x, self.test_y),
        ):
            if x.dim() != 4 or x.dtype != torch.float32:
                problems.append(
                    f"{split}_x is {x.dtype} of shape {tuple(x.shape)}; expected float32 "
                    "(N, C, H, W)"
                )
            elif x.numel() > 0:
                low, high = torch.aminmax(x)
                if not (float(low) >= 0.0 and float(high) <= 1.0):  # Also catches NaN.
                    problems.append(
                        f"{split}_x values range over [{float(low):g}, {float(high):g}]; they "
                        "must be in [0, 1] (put normalization inside the model)"
                    )
            if y.dim() != 1 or y.dtype != torch.int64:
                problems.append(
                    f"{split}_y is {y.dtype} of shape {tuple(y.shape)}; expected int64 (N,)"
                )
            elif y.numel() > 0 and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                problems.append(
                    f"{split}_y has labels in [{int(y.min())}, {int(y.max())}] but there are "
                    f"{len(self.classes)} classes; labels must be in [0, {len(self.classes) - 1}]"
                )
            if x.dim() >= 1 and y.dim() >= 1 and x.shape[0] != y.shape[0]:
                problems.append(f"{split}_x has {x.shape[0]} images but {split}_y has {y.shape[0]}")
            if x.dim() >= 1 and x.shape[0] == 0:
                problems.append(f"the {split} split is empty")
        if self.train_x.dim() == 4 and self.test_x.dim() == 4:
            if self.train_x.shape[1:] != self.test_x.shape[1:]:
                problems.append(
                    f"train images are {tuple(self.train_x.shape[1:])} but test images are "
                    f"{tuple(self.test_x.shape[1:])}; both must have the same (C, H, W)"
                )
            channels = self.train_x.shape[1]
            if len(self.mean) != channels or len(self.std) != channels:
                problems.append(
                    f"mean has {len(self.mean)} and std {len(self.std)} values for {channels} "
                    "channels; give one per channel"
                )
        if any(not s > 0.0 for s in self.std):
            problems.append(f"std {self.std} must be positive (use 1.0 for a constant channel)")
        if not self.classes:
            problems.append("classes is empty; give one name per class")
        if problems:
            raise InvalidSettingsError(
                f"invalid splits for dataset {self.name!r}:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )

    @property
    def num_classes(self) -> int:
        """The number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape ``(C, H, W)`` of one image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def train(self) -> TensorDataset:
        """Return the training split as a ``TensorDataset(train_x, train_y)``."""
        return TensorDataset(self.train_x, self.train_y)

    def test(self) -> TensorDataset:
        """Return the test split as a ``TensorDataset(test_x, test_y)``."""
        return TensorDataset(self.test_x, self.test_y)

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Splits(name={self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
            f"input_shape=({c}, {h}, {w}), num_classes={self.num_classes})"
        )


def make_splits(
    name: str,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    classes: Sequence[str],
) -> Splits:
    """Build :class:`Splits` from images as float32 in [0, 1] or as uint8 pixels (0 to 255).

    The channel statistics come from the training images: exactly, from pixel-value counts, when
    they are uint8 (much faster than ``torch.std_mean`` on 60000 images).
    """
    if train_x.dtype == torch.uint8:
        mean, std = _uint8_channel_stats(train_x)
    else:
        std_t, mean_t = torch.std_mean(train_x, dim=(0, 2, 3), correction=0)
        mean, std = tuple(float(m) for m in mean_t), tuple(float(s) for s in std_t)
    if any(s == 0.0 for s in std):
        logger.warning("%s has a constant channel (std 0); using std 1.0 for it", name)
        std = tuple(s if s > 0.0 else 1.0 for s in std)
    return Splits(
        name=name,
        train_x=_to_unit_float(train_x),
        train_y=train_y,
        test_x=_to_unit_float(test_x),
        test_y=test_y,
        classes=tuple(classes),
        mean=mean,
        std=std,
    )


def _uint8_channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 ``(N, C, H, W)`` images, scaled to [0, 1]."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means: list[float] = []
    stds: list[float] = []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        variance = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(float(mean))
        stds.append(float(variance.sqrt()))
    return tuple(means), tuple(stds)


def _to_unit_float(images: Tensor) -> Tensor:
    """Return uint8 pixels as float32 ``pixels / 255``; float32 images are returned as they are."""
    if images.dtype != torch.uint8:
        return images
    # torch's multi-threaded conversion is several times faster than numpy's astype.
    return images.to(torch.float32).div_(255.0)
