"""The image classifier wrapper: normalization lives inside the model, inputs are in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import Tensor, nn

from amnesiac._names import suggest
from amnesiac.errors import InvalidSettingsError, UnknownNameError
from amnesiac.models.plain import plaincnn, plaincnn_nobn
from amnesiac.models.resnet import SmallCNN, resnet18, resnet18_maxpool, resnet20

Builder = Callable[..., nn.Module]

_ARCHS: dict[str, Builder] = {
    "resnet20": resnet20,
    "resnet18": resnet18,
    "resnet18_maxpool": resnet18_maxpool,
    "cnn": SmallCNN,
    "plaincnn": plaincnn,
    "plaincnn_nobn": plaincnn_nobn,
}


class Normalize(nn.Module):
    """Subtract a per-channel mean and divide by a per-channel standard deviation.

    Shape:
        ``(N, C, H, W)`` in, same shape out.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise InvalidSettingsError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise InvalidSettingsError(f"std must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class RepeatChannels(nn.Module):
    """Repeat a single-channel image to ``channels`` channels (grayscale into RGB networks)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(-1, self.channels, -1, -1)


class ImageClassifier(nn.Module):
    """A classifier that takes images in [0, 1] and normalizes them itself.

    Args:
        net: The network that maps normalized images to logits.
        mean: Per-channel mean used for normalization.
        std: Per-channel standard deviation used for normalization.

    Shape:
        Input ``(N, C, H, W)`` with values in [0, 1]; output logits ``(N, num_classes)``.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, D)`` of the wrapped network."""
        features = getattr(self.net, "features", None)
        if features is None or not callable(features):
            raise NotImplementedError(f"{type(self.net).__name__} exposes no features() method")
        out: Tensor = features(self.normalize(x))
        return out


def timm_model(name: str, *, in_channels: int, num_classes: int) -> nn.Module:
    """The timm model ``name``, untrained, for ``in_channels`` channels and ``num_classes``
    classes (timm adapts its stem to the channels; the input size is the caller's).

    Raises:
        InvalidSettingsError: timm is not installed.
        UnknownNameError: timm has no model of that name (the message names the closest).
    """
    try:
        import timm  # an optional extra: amnesiac[timm]
    except ImportError:
        raise InvalidSettingsError(
            f"timm:{name} needs timm: pip install 'amnesiac[timm]' (or pip install timm)"
        ) from None
    available = timm.list_models()
    if name not in available:
        raise UnknownNameError(suggest(name, available, "timm model"))
    net: nn.Module = timm.create_model(
        name, pretrained=False, num_classes=num_classes, in_chans=in_channels
    )
    return net


def list_archs() -> list[str]:
    """Names accepted by :func:`create_model` (``tv:NAME`` takes any torchvision classifier,
    ``timm:NAME`` any timm model)."""
    return [*sorted(_ARCHS), "tv:<torchvision model name>", "timm:<timm model name>"]


def create_model(
    arch: str,
    *,
    in_channels: int,
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageClassifier:
    """Build an untrained :class:`ImageClassifier` by architecture name.

    Args:
        arch: ``resnet20``, ``resnet18`` (no max-pool), ``resnet18_maxpool`` (L2UL's CIFAR-10
            network), ``cnn``, ``plaincnn`` / ``plaincnn_nobn`` (no residual connections,
            with / without BatchNorm), ``tv:NAME`` for a torchvision model (e.g.
            ``tv:resnet50``), or ``timm:NAME`` for a timm model (e.g. ``timm:resnet10t``;
            needs ``pip install 'amnesiac[timm]'``), built without pre-trained weights.
        in_channels: Number of image channels.
        num_classes: Number of classes.
        mean: Per-channel normalization mean (default 0).
        std: Per-channel normalization standard deviation (default 1).

    Example:
        >>> model = create_model("resnet20", in_channels=1, num_classes=10)
        >>> model(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if in_channels < 1 or num_classes < 2:
        raise InvalidSettingsError(
            f"need in_channels >= 1 and num_classes >= 2, got {in_channels} and {num_classes}"
        )
    mean = list(mean) if mean is not None else [0.0] * in_channels
    std = list(std) if std is not None else [1.0] * in_channels
    if len(mean) != in_channels:
        raise InvalidSettingsError(f"mean has {len(mean)} values for {in_channels} channels")
    net: nn.Module
    if arch.startswith("tv:"):
        name = arch[3:]
        available = torchvision.models.list_models(module=torchvision.models)
        if name not in available:
            raise UnknownNameError(suggest(name, available, "torchvision model"))
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        if in_channels == 1:
            net = nn.Sequential(RepeatChannels(3), net)
        elif in_channels != 3:
            raise InvalidSettingsError(
                f"torchvision models take 3 channels (or 1, repeated); got {in_channels}"
            )
    elif arch.startswith("timm:"):
        net = timm_model(arch[5:], in_channels=in_channels, num_classes=num_classes)
    elif arch in _ARCHS:
        net = _ARCHS[arch](in_channels=in_channels, num_classes=num_classes)
    else:
        raise UnknownNameError(suggest(arch, [*_ARCHS, "tv:NAME", "timm:NAME"], "architecture"))
    return ImageClassifier(net, mean, std)
