"""Proxy inputs made from the forget set alone, to stand in for the data a forget-only method lacks.

A forget-only method sees nothing of "everything around" the forget instances. These proxies are
inputs *near the data distribution but not equal to any forget instance*: mixtures of two forget
images, and forget images shifted by a few pixels and flipped. Trained toward the original
model's outputs on them, they hold the model's behaviour on the rest of the distribution while
the forget instances themselves leave their class.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError


def shift_images(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Shift each image by ``(dy[i], dx[i])`` pixels, filling with zeros.

    Shape:
        ``x``: ``(N, C, H, W)``; ``dy``, ``dx``: ``(N,)`` integers; returns ``(N, C, H, W)``.
    """
    n, _, h, w = x.shape
    pad = int(max(dy.abs().max().item(), dx.abs().max().item(), 0)) if n else 0
    if pad == 0:
        return x.clone()
    padded = F.pad(x, (pad,) * 4)
    rows = (pad - dy.to(x.device)[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (pad - dx.to(x.device)[:, None] + torch.arange(w, device=x.device))[:, None, :]
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2).contiguous()


def forget_proxies(
    x: Tensor,
    n: int,
    *,
    min_shift: int = 3,
    max_shift: int = 4,
    flip: bool = True,
    mix: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` proxy inputs built from the forget images ``x``.

    Half (all when ``mix=False`` or a single image) are forget images shifted by
    ``min_shift..max_shift`` pixels along each axis (random sign) and, with ``flip``, mirrored
    left-right with probability 1/2; the other half are mixtures ``l * x_i + (1 - l) * x_j`` of
    two different forget images with ``l`` uniform in [0.2, 0.8].

    Shape:
        ``x``: ``(K, C, H, W)`` in [0, 1]; returns ``(n, C, H, W)``.
    """
    if n < 0 or min_shift < 0 or max_shift < min_shift:
        raise InvalidSettingsError(
            f"need n >= 0 and 0 <= min_shift <= max_shift, got {n}, {min_shift}, {max_shift}"
        )
    k = len(x)
    if n == 0 or k == 0:
        return x.new_zeros((0, *x.shape[1:]))
    n_mix = n // 2 if (mix and k > 1) else 0
    n_shift = n - n_mix
    src = torch.randint(k, (n_shift,), generator=generator)

    def offsets() -> Tensor:
        size = torch.randint(min_shift, max_shift + 1, (n_shift,), generator=generator)
        sign = torch.randint(0, 2, (n_shift,), generator=generator) * 2 - 1
        return size * sign

    shifted = shift_images(x[src.to(x.device)], offsets(), offsets())
    if flip:
        mask = (torch.rand(n_shift, generator=generator) < 0.5).to(x.device)
        shifted = torch.where(mask[:, None, None, None], shifted.flip(-1), shifted)
    if n_mix == 0:
        return shifted
    i = torch.randint(k, (n_mix,), generator=generator)
    j = (i + torch.randint(1, k, (n_mix,), generator=generator)) % k  # a different image
    lam = (torch.rand(n_mix, generator=generator, dtype=x.dtype) * 0.6 + 0.2).to(x.device)
    lam = lam[:, None, None, None]
    mixed = lam * x[i.to(x.device)] + (1 - lam) * x[j.to(x.device)]
    return torch.cat([shifted, mixed])


def augmented_size(k: int, n: int) -> int:
    """How many images :func:`augment_to` returns for ``k`` images and a target of ``n``: ``n``
    when ``0 < k < n``, else ``k`` (a set that large, or none, is left as it is).

    Example:
        >>> augmented_size(500, 2000), augmented_size(5000, 2000), augmented_size(0, 2000)
        (2000, 5000, 0)
    """
    return n if 0 < k < n else k


def augment_to(
    x: Tensor,
    n: int,
    *,
    min_shift: int = 3,
    max_shift: int = 4,
    flip: bool = True,
    mix: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``x`` followed by :func:`forget_proxies` made from it, ``n`` images in all; ``x`` itself
    when it has ``n`` or more (or none).

    Shape:
        ``x``: ``(K, C, H, W)`` in [0, 1]; returns ``(max(K, n), C, H, W)`` (``K`` when 0).
    """
    if augmented_size(len(x), n) == len(x):
        return x
    extra = forget_proxies(
        x, n - len(x), min_shift=min_shift, max_shift=max_shift, flip=flip, mix=mix,
        generator=generator,
    )  # fmt: skip
    return torch.cat([x, extra])
