"""Surrogate images: unlabeled in-domain images a forget-only method may hold the model on.

A deployed model keeps seeing inputs from its own domain that carry no labels and were never
trained on. Such images are far better anchors for "keep everything else" than anything made from
the forget set alone (issue 15). :func:`load_surrogate` reads them from a folder of image files
or from a dataset's test split.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import Tensor

from amnesiac.data.datasets import load_dataset
from amnesiac.data.folder import load_image as _load_image
from amnesiac.data.folder import stack_images as _stack_images
from amnesiac.errors import InvalidSettingsError

__all__ = ["SURROGATE_SPEC_HELP", "load_surrogate", "surrogate_test_rows"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}

SURROGATE_SPEC_HELP = (
    "unlabeled in-domain images that were not trained on: a folder of image files (searched "
    "recursively), or DATASET:test[:START:STOP] (e.g. fashion-mnist:test:0:5000)"
)


def load_surrogate(
    spec: str, *, data_dir: str | Path | None = None, download: bool = False
) -> Tensor:
    """Load surrogate images from ``spec``.

    Args:
        spec: A folder of image files (every file with an image suffix below it; labels and
            subfolder names are ignored), or ``DATASET:test`` or ``DATASET:test:START:STOP``
            (rows ``START`` to ``STOP - 1`` of that dataset's test split). The training split is
            refused: it holds the forget set, and with the retained data at hand a method that
            reads it (``neg_grad_retain``) is the better choice.
        data_dir: Where datasets are searched (as for :func:`amnesiac.load_dataset`).
        download: Download a named dataset if it is not found.

    Returns:
        Images ``(N, C, H, W)`` in [0, 1].

    Raises:
        InvalidSettingsError: For a spec that is neither, an empty range or folder, the training
            split, or images that cannot be read or differ in size.

    Example:
        >>> load_surrogate("digits:test:0:100").shape
        torch.Size([100, 1, 8, 8])
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(
            str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
        )
        if not files:
            suffixes = ", ".join(sorted(_IMAGE_SUFFIXES))
            raise InvalidSettingsError(f"surrogate folder {path} holds no image files ({suffixes})")
        if len(files) == 1:
            return _load_image(files[0])[None]
        return _stack_images(files, path)
    name, start, stop = _parse(spec)
    data = load_dataset(name, data_dir, download=download)
    start, stop = _checked_range(start, stop, len(data.test_y), data.name)
    return data.test_x[start:stop]


def surrogate_test_rows(spec: str, dataset: str, n_test: int) -> tuple[int, int] | None:
    """The rows ``(start, stop)`` of ``dataset``'s test split that ``spec`` takes as surrogate
    images (``None`` for a folder or another dataset), so evaluation can leave them out.

    Example:
        >>> surrogate_test_rows("digits:test:0:100", "digits", 450)
        (0, 100)
        >>> surrogate_test_rows("digits:test:0:100", "digits[:500]", 450)  # the same test split
        (0, 100)
    """
    if Path(spec).expanduser().is_dir():
        return None
    name, start, stop = _parse(spec)
    if _key(name) != _key(dataset):
        return None
    return _checked_range(start, stop, n_test, dataset)


def _key(name: str) -> str:
    """The dataset whose test split ``name`` reads (``NAME[:N]`` shares ``NAME``'s)."""
    return re.sub(r"\[:[^\]]*\]$", "", name.strip()).lower().replace("_", "-")


def _checked_range(start: int, stop: int | None, n: int, name: str) -> tuple[int, int]:
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise InvalidSettingsError(
            f"surrogate range {start}:{stop} is outside the {n} test images of {name}"
        )
    return start, stop


def _parse(spec: str) -> tuple[str, int, int | None]:
    parts = spec.split(":")
    start, stop = 0, None
    if len(parts) >= 4 and all(p.lstrip("-").isdigit() for p in parts[-2:]):
        start, stop = int(parts[-2]), int(parts[-1])
        parts = parts[:-2]
    if len(parts) < 2 or parts[-1] not in ("train", "test"):
        raise InvalidSettingsError(
            f"surrogate {spec!r} is not a folder nor DATASET:test[:START:STOP]; give "
            + SURROGATE_SPEC_HELP
        )
    if parts[-1] == "train":
        raise InvalidSettingsError(
            f"surrogate {spec!r} names a training split, which holds the forget set; give unseen "
            "images (DATASET:test[:START:STOP] or a folder), or pass the retained data to a "
            "method that reads it (neg_grad_retain)"
        )
    return ":".join(parts[:-1]), start, stop
