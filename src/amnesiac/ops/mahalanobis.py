"""Class-conditional Mahalanobis distances on penultimate features, as SCAR computes them:
features raised to the power ``delta`` (Tukey's transform), a shrunk covariance per class
normalized to a correlation matrix, and L2-normalized vectors.

Example:
    >>> import torch
    >>> from amnesiac.ops.mahalanobis import class_statistics, mahalanobis
    >>> g = torch.Generator().manual_seed(0)
    >>> feats = torch.cat([torch.rand(50, 4, generator=g), torch.rand(50, 4, generator=g) + 2])
    >>> labels = torch.tensor([0] * 50 + [1] * 50)
    >>> stats = class_statistics(feats, labels, num_classes=2)
    >>> d = mahalanobis(feats[:1], stats)  # a class-0 point is nearer class 0
    >>> bool(d[0, 0] < d[0, 1])
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["ClassStatistics", "class_statistics", "mahalanobis"]


@dataclass
class ClassStatistics:
    """Per-class means ``(C, D)`` (L2-normalized) and inverse shrunk correlation matrices
    ``(C, D, D)``; ``present[c]`` is False for a class with fewer than 2 examples (infinitely
    far)."""

    means: Tensor
    precisions: Tensor
    present: Tensor
    delta: float


def _tukey(z: Tensor, delta: float) -> Tensor:
    # a tiny offset keeps the gradient of z ** delta finite at z = 0 (ReLU features often are 0)
    return (z.clamp_min(0) + 1e-6).pow(delta)


def class_statistics(
    features: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    delta: float = 0.5,
    gamma1: float = 3.0,
    gamma2: float = 3.0,
) -> ClassStatistics:
    """SCAR's class statistics of ``features`` (non-negative, e.g. after a ReLU and pooling).

    For each class: ``z' = z ** delta``; mean ``μ`` and covariance ``Σ`` of ``z'``; shrinkage
    ``Σ + gamma1·V1·I + gamma2·V2·(1 - I)`` with ``V1`` the mean of the diagonal and ``V2`` the
    mean of the nonzero off-diagonal entries; normalized to a correlation matrix; inverted
    (pseudo-inverse). Computed in float64.
    """
    z = _tukey(features.detach().double(), delta)
    d = z.shape[1]
    means = z.new_zeros(num_classes, d)
    precisions = z.new_zeros(num_classes, d, d)
    present = torch.zeros(num_classes, dtype=torch.bool)
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    for c in range(num_classes):
        zc = z[labels == c]
        if len(zc) < 2:
            continue
        present[c] = True
        means[c] = zc.mean(0)
        cov = torch.cov(zc.T).reshape(d, d)
        v1 = cov.diagonal().mean()
        off = cov[~eye.bool()]
        nonzero = off[off != 0]
        v2 = nonzero.mean() if len(nonzero) else off.new_zeros(())
        cov = cov + gamma1 * v1 * eye + gamma2 * v2 * (1 - eye)
        std = cov.diagonal().clamp_min(1e-12).sqrt()
        corr = cov / (std[:, None] * std[None, :])
        precisions[c] = torch.linalg.pinv(corr)
    return ClassStatistics(F.normalize(means, dim=1), precisions, present.to(z.device), delta)


def mahalanobis(features: Tensor, stats: ClassStatistics) -> Tensor:
    """Squared Mahalanobis distance of each (transformed, L2-normalized) feature vector to
    every class; ``inf`` for the classes without statistics. Differentiable in ``features``.

    Shape:
        ``features``: ``(N, D)``; returns ``(N, C)`` in ``features``' dtype.
    """
    z = F.normalize(_tukey(features, stats.delta), dim=1).to(stats.means.dtype)
    diff = z[:, None, :] - stats.means[None]  # (N, C, D)
    dist = torch.einsum("ncd,cde,nce->nc", diff, stats.precisions, diff)
    dist = dist.masked_fill(~stats.present[None], float("inf"))
    return dist.to(features.dtype)
