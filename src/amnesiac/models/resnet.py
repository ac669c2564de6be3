"""CIFAR-style residual networks (He et al., 2016) for small images.

``resnet20`` is the 3-stage network of the ResNet paper's CIFAR section (16/32/64 channels, three
basic blocks per stage, about 0.27 M parameters). ``resnet18`` is the torchvision ResNet-18 layout
with a 3x3 stride-1 stem and no max-pool (the common CIFAR variant, 32x32 feature maps in the first
stage). ``resnet18_maxpool`` is the network of the L2UL code for CIFAR-10 (its ``resnet.py``): the
same 3x3 stride-1 stem, with torchvision's 3x3 stride-2 max-pool kept after it (16x16 maps in the
first stage, about 4x fewer operations). Both have the same weights (11.2 M parameters), so the same
state dict loads into either; a checkpoint records which one it is by its ``arch``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A stack of :class:`BasicBlock` stages, global average pooling and a linear classifier.

    Shape:
        Input ``(N, C, H, W)`` (already normalized), output logits ``(N, num_classes)``.
    """

    def __init__(
        self,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        *,
        in_channels: int,
        num_classes: int,
        maxpool: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        #: torchvision's max-pool after the stem (no weights, so the state dict is the same)
        self.stem_pool: nn.Module = nn.MaxPool2d(3, 2, 1) if maxpool else nn.Identity()
        layers: list[nn.Module] = []
        in_planes = widths[0]
        for i, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            stage: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock(in_planes, width, stride))
                in_planes = width
            layers.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal (fan-out) convolutions; the other layers keep PyTorch's defaults."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, D)``."""
        out = self.stem_pool(torch.relu(self.bn1(self.conv1(x))))
        return torch.flatten(self.pool(self.layers(out)), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def resnet20(*, in_channels: int, num_classes: int) -> ResNet:
    """ResNet-20 for 32x32-like inputs (He et al. 2016, Section 4.2)."""
    return ResNet((3, 3, 3), (16, 32, 64), in_channels=in_channels, num_classes=num_classes)


def resnet18(*, in_channels: int, num_classes: int) -> ResNet:
    """ResNet-18 with a CIFAR stem (3x3 conv, stride 1, no max-pool)."""
    return ResNet(
        (2, 2, 2, 2), (64, 128, 256, 512), in_channels=in_channels, num_classes=num_classes
    )


def resnet18_maxpool(*, in_channels: int, num_classes: int) -> ResNet:
    """ResNet-18 as the L2UL code builds it for CIFAR-10: 3x3 stride-1 stem, then torchvision's
    3x3 stride-2 max-pool (Cha et al., AAAI 2024, ``resnet.py``)."""
    return ResNet(
        (2, 2, 2, 2),
        (64, 128, 256, 512),
        in_channels=in_channels,
        num_classes=num_classes,
        maxpool=True,
    )


class SmallCNN(nn.Module):
    """A two-block convolutional network with BatchNorm, for tiny inputs and fast tests."""

    def __init__(self, *, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, D)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x))
