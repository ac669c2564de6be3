"""A plain convolutional network (no residual connections), with or without BatchNorm.

The second architecture family of the benchmark: defaults tuned on ResNet-20 must hold on a
network that has no skip connections, and on one without BatchNorm statistics.
"""

from __future__ import annotations

from torch import Tensor, nn


class PlainCNN(nn.Module):
    """VGG-style: two stages of two 3x3 convolutions (``width`` then ``2 * width`` channels), each
    stage ending in 2x2 max pooling, then global average pooling and a linear classifier.

    Args:
        in_channels: Image channels.
        num_classes: Classes.
        width: Channels of the first stage.
        batchnorm: A BatchNorm layer after every convolution (without it the convolutions have
            biases).

    Example:
        >>> import torch
        >>> PlainCNN(in_channels=1, num_classes=10, batchnorm=False)(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, *, in_channels: int, num_classes: int, width: int = 32, batchnorm: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in (width, 2 * width):
            for _ in range(2):
                layers.append(nn.Conv2d(channels, stage, 3, padding=1, bias=not batchnorm))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(stage))
                layers.append(nn.ReLU())
                channels = stage
            layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, D)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x))


def plaincnn(*, in_channels: int, num_classes: int) -> PlainCNN:
    """:class:`PlainCNN` with BatchNorm."""
    return PlainCNN(in_channels=in_channels, num_classes=num_classes, batchnorm=True)


def plaincnn_nobn(*, in_channels: int, num_classes: int) -> PlainCNN:
    """:class:`PlainCNN` without BatchNorm."""
    return PlainCNN(in_channels=in_channels, num_classes=num_classes, batchnorm=False)
