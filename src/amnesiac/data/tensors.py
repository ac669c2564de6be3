"""Turn a dataset or an ``(x, y)`` pair into two validated tensors.

Everything downstream (methods, metrics, the benchmark) works on an image tensor ``x`` of shape
``(N, C, H, W)`` with values in [0, 1] and a label tensor ``y`` of shape ``(N,)``. Normalization
belongs inside the model (a ``Normalize`` layer built from :attr:`Splits.mean` and
:attr:`Splits.std`), so that attacks and metrics all see the same [0, 1] pixel space.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset, Subset, TensorDataset

from amnesiac.errors import InvalidSettingsError

__all__ = ["as_images", "as_tensors"]

logger = logging.getLogger(__name__)

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_tensors(data: Any, *, name: str = "data") -> tuple[Tensor, Tensor]:
    """Return ``(x, y)`` tensors from a dataset or a pair, validated.

    Args:
        data: A :class:`torch.utils.data.Dataset` whose items are ``(x, y)`` pairs (a
            :class:`~torch.utils.data.TensorDataset` of two tensors, or a ``Subset`` of one, is
            used directly without iterating), or a pair ``(x, y)`` of tensors or NumPy arrays.
        name: What the data is called in error messages, e.g. ``"forget"`` or ``"retain"``.

    Returns:
        ``(x, y)``: ``x`` float32 and ``y`` int64, on the device the input was on.

    Shape:
        - x: ``(N, C, H, W)`` with values in [0, 1]; ``(N, H, W)`` is accepted and gets a
          channel dimension.
        - y: ``(N,)`` non-negative integer class labels.

    Raises:
        InvalidSettingsError: If the data is empty, lengths differ, shapes or dtypes are wrong,
            or pixel values are outside [0, 1]. Every problem found is listed.

    Example:
        >>> import torch
        >>> x, y = as_tensors((torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])))
        >>> x.shape, y.dtype
        (torch.Size([4, 1, 8, 8]), torch.int64)
    """
    x_raw, y_raw = _unpack(data, name)
    x = _to_tensor(x_raw, f"{name} images")
    y = _to_tensor(y_raw, f"{name} labels")
    problems: list[str] = []

    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() != 4:
        problems.append(
            f"{name} images have shape {tuple(x.shape)}; expected (N, C, H, W) or (N, H, W)"
        )
    if y.dim() != 1:
        problems.append(f"{name} labels have shape {tuple(y.shape)}; expected (N,)")
    if x.dim() >= 1 and y.dim() >= 1 and x.shape[0] != y.shape[0]:
        problems.append(
            f"{name} has {x.shape[0]} images but {y.shape[0]} labels; they must match one to one"
        )
    elif x.dim() >= 1 and x.shape[0] == 0:
        problems.append(f"{name} is empty; it needs at least one example")

    if y.dtype not in _INTEGER_DTYPES:
        problems.append(
            f"{name} labels have dtype {y.dtype}; expected integer class indices "
            "(convert with y.long())"
        )
    elif y.numel() > 0 and int(y.min()) < 0:
        problems.append(
            f"{name} labels contain {int(y.min())}; class labels must be 0, 1, ..., C - 1"
        )

    if x.dtype == torch.bool or x.dtype.is_complex:
        problems.append(f"{name} images have dtype {x.dtype}; expected a real float tensor")
    elif x.numel() > 0:
        x = x.to(torch.float32)
        low_t, high_t = torch.aminmax(x)  # One pass; NaN propagates (isfinite is much slower).
        low, high = float(low_t), float(high_t)
        if math.isnan(low) or math.isnan(high):
            problems.append(f"{name} images contain NaN values")
        elif low < 0.0 or high > 1.0:
            problems.append(
                f"{name} image values range over [{low:g}, {high:g}]; they must be in "
                "[0, 1]. Convert images to [0, 1] (e.g. divide uint8 pixels by 255, or use "
                "torchvision's ToTensor) and put any normalization inside the model "
                "(a Normalize layer), not in the data"
            )

    if problems:
        raise InvalidSettingsError(_join(f"invalid {name}", problems))
    return x.to(torch.float32), y.to(torch.int64)


def as_images(data: Any, *, name: str = "images") -> Tensor:
    """Return a validated float32 image tensor from images alone or from labelled data.

    Args:
        data: A tensor or NumPy array of images, or anything :func:`as_tensors` accepts (a
            Dataset of ``(image, label)`` items or an ``(x, y)`` pair); labels are ignored.
        name: What the images are called in error messages, e.g. ``"surrogate"``.

    Shape:
        Returns ``(N, C, H, W)`` with values in [0, 1]; ``(N, H, W)`` gets a channel dimension.

    Raises:
        InvalidSettingsError: As :func:`as_tensors` for the images.

    Example:
        >>> as_images(torch.rand(5, 8, 8)).shape
        torch.Size([5, 1, 8, 8])
    """
    if isinstance(data, (Tensor, np.ndarray)):
        x = _to_tensor(data, f"{name} images")
        n = x.shape[0] if x.dim() >= 1 else 0
        return as_tensors((x, torch.zeros(n, dtype=torch.int64)), name=name)[0]
    return as_tensors(data, name=name)[0]


def _join(head: str, problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"{head}: {problems[0]}."
    return f"{head}:\n" + "\n".join(f"  - {p}" for p in problems)


def _unpack(data: Any, name: str) -> tuple[Any, Any]:
    """Return raw ``(x, y)`` from the accepted input kinds, without validation."""
    if isinstance(data, TensorDataset):
        if len(data.tensors) != 2:
            raise InvalidSettingsError(
                f"{name} is a TensorDataset of {len(data.tensors)} tensors; expected exactly two "
                "(images, labels)"
            )
        return data.tensors[0], data.tensors[1]
    if isinstance(data, Subset) and isinstance(data.dataset, TensorDataset):
        x, y = _unpack(data.dataset, name)
        index = torch.as_tensor(list(data.indices), dtype=torch.int64)
        return x[index], y[index]
    if isinstance(data, Dataset):
        return _stack_items(data, name)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise InvalidSettingsError(
        f"{name} is a {type(data).__name__}; expected a torch Dataset of (image, label) items "
        "or a pair (x, y) of tensors or arrays"
    )


def _stack_items(dataset: Dataset[Any], name: str) -> tuple[Tensor, Tensor]:
    """Iterate a dataset of ``(x, y)`` items and stack them."""
    items: Iterable[Any]
    if isinstance(dataset, IterableDataset):
        items = dataset
    else:
        try:
            length = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise InvalidSettingsError(
                f"{name} is a {type(dataset).__name__} without __len__; give it a __len__ or "
                "make it an IterableDataset"
            ) from None
        items = (dataset[i] for i in range(length))
    xs: list[Tensor] = []
    ys: list[int] = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InvalidSettingsError(
                f"item {i} of {name} is a {type(item).__name__}; expected an (image, label) pair"
            )
        x_i = _to_tensor(item[0], f"image {i} of {name}")
        label = item[1]
        if isinstance(label, Tensor):
            if label.numel() != 1 or label.dtype not in _INTEGER_DTYPES:
                raise InvalidSettingsError(
                    f"label {i} of {name} is a {label.dtype} tensor of shape "
                    f"{tuple(label.shape)}; expected one integer"
                )
            label = label.item()
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise InvalidSettingsError(
                f"label {i} of {name} is {label!r}; expected an integer class index"
            )
        if xs and x_i.shape != xs[0].shape:
            raise InvalidSettingsError(
                f"image {i} of {name} has shape {tuple(x_i.shape)} but image 0 has "
                f"{tuple(xs[0].shape)}; all images must have the same shape (resize them)"
            )
        xs.append(x_i)
        ys.append(int(label))
    if not xs:
        raise InvalidSettingsError(f"{name} is empty; it needs at least one example")
    logger.debug("stacked %d items of %s", len(xs), name)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def _to_tensor(value: Any, what: str) -> Tensor:
    """Convert a tensor, array or PIL image to a tensor without copying where possible."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise InvalidSettingsError(f"{what} is an object array; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    if type(value).__module__.startswith("PIL."):
        from torchvision.transforms.functional import to_tensor

        return to_tensor(value)
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InvalidSettingsError(
            f"{what} is a {type(value).__name__} that cannot be turned into a tensor ({err}); "
            "pass tensors or NumPy arrays"
        ) from None
