"""Linear centered kernel alignment (Kornblith et al., ICML 2019): how alike two representations
are."""

from __future__ import annotations

from torch import Tensor

from amnesiac.errors import InvalidSettingsError


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA between two representations of the same ``N`` inputs, in ``[0, 1]``.

    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` after centering each feature. It is 1
    for identical representations and invariant to orthogonal transforms and isotropic scaling
    of either one.

    Shape:
        ``x``: ``(N, D1)``; ``y``: ``(N, D2)``.
    """
    if x.dim() != 2 or y.dim() != 2 or len(x) != len(y):
        raise InvalidSettingsError(
            f"need two (N, D) feature matrices of the same N, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if len(x) < 2:
        raise InvalidSettingsError("linear CKA needs at least 2 inputs")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).square().sum()
    norm = (x.T @ x).square().sum().sqrt() * (y.T @ y).square().sum().sqrt()
    if norm == 0:
        return float("nan")
    return float(cross / norm)
