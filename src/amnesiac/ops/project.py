"""Gradient projection so that a step does not, to first order, raise a reference loss.

A-GEM (Chaudhry et al., ICLR 2019): when the proposed gradient ``g`` and the reference
gradient ``ref`` point against each other (``g . ref < 0``, so a step along ``-g`` raises the
reference loss), remove ``g``'s component along ``ref``; otherwise leave ``g`` alone.

Example:
    >>> import torch
    >>> from amnesiac.ops import agem_project
    >>> g, ref = [torch.tensor([1.0, -1.0])], [torch.tensor([0.0, 1.0])]
    >>> agem_project(g, ref)[0].tolist()
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from amnesiac.errors import InvalidSettingsError

__all__ = ["agem_project"]


def agem_project(g: Sequence[Tensor], ref: Sequence[Tensor]) -> list[Tensor]:
    """``g`` with its component along ``ref`` removed when the two conflict (A-GEM).

    Both are lists of per-parameter tensors of the same shapes, treated as one flat vector.
    The result satisfies ``result . ref >= 0`` (up to rounding); a zero ``ref`` changes nothing.
    """
    if len(g) != len(ref):
        raise InvalidSettingsError(f"g has {len(g)} tensors but ref has {len(ref)}")
    dot = sum((a.double() * b.double()).sum() for a, b in zip(g, ref, strict=True))
    norm2 = sum(b.double().pow(2).sum() for b in ref)
    if not isinstance(dot, Tensor) or not isinstance(norm2, Tensor):  # empty lists
        return list(g)
    if dot >= 0 or norm2 <= 0:
        return list(g)
    scale = (dot / norm2).to(g[0].dtype)
    return [a - scale * b for a, b in zip(g, ref, strict=True)]
