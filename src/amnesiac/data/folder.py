"""``folder:PATH``: images in torchvision's ImageFolder layout, one subfolder per class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from amnesiac.data.splits import Splits, make_splits
from amnesiac.errors import DatasetNotFoundError, InvalidSettingsError

__all__ = ["load_folder", "load_image", "stack_images"]

_CONVERT_MODES = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def load_image(path: str) -> Tensor:
    """Read one image as a ``(C, H, W)`` float tensor in [0, 1], keeping its channel count."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import to_tensor

    try:
        with Image.open(path) as opened:
            opened.load()
            image: Image.Image = opened
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in _CONVERT_MODES:
                image = image.convert(_CONVERT_MODES[image.mode])
            elif image.mode not in ("L", "LA", "RGB", "RGBA"):
                raise InvalidSettingsError(
                    f"image {path} has mode {image.mode!r} (e.g. 16-bit or float pixels); "
                    "convert it to 8-bit grayscale (L) or RGB"
                )
            return to_tensor(image)
    except (UnidentifiedImageError, OSError) as err:
        raise InvalidSettingsError(
            f"cannot read image {path}: {err}. Remove the file or replace it with a valid image."
        ) from err


def _scan_image_folder(root: Path) -> tuple[list[str], list[int], list[str]]:
    """Return ``(paths, targets, classes)`` of an ImageFolder layout (one subfolder per class)."""
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(root))
    except FileNotFoundError as err:
        raise DatasetNotFoundError(
            f"no images found in {root}: {err}. Put images in one subfolder per class, e.g. "
            f"{root}/cat/1.png and {root}/dog/2.png."
        ) from err
    paths = [path for path, _ in folder.samples]
    targets = [int(target) for _, target in folder.samples]
    return paths, targets, list(folder.classes)


def stack_images(paths: Sequence[str], root: Path) -> Tensor:
    images = [load_image(path) for path in paths]
    first = images[0].shape
    differing = [(p, im.shape) for p, im in zip(paths, images, strict=True) if im.shape != first]
    if differing:
        shown = "; ".join(f"{p} is {tuple(s)}" for p, s in differing[:5])
        more = f" (and {len(differing) - 5} more)" if len(differing) > 5 else ""
        raise InvalidSettingsError(
            f"images in {root} differ in size or channels: {paths[0]} is (C, H, W) = "
            f"{tuple(first)} but {shown}{more}. Resize (and convert) all images to the same size "
            "and channel count."
        )
    return torch.stack(images)


def load_folder(name: str, path_text: str, data_dir: str | Path | None) -> Splits:
    """Load ``folder:PATH``: ``PATH/train`` and ``PATH/test`` (or ``val``), or PATH split 80/20."""
    path = Path(path_text).expanduser()
    if not path.exists() and not path.is_absolute() and data_dir is not None:
        in_data_dir = Path(data_dir).expanduser() / path
        if in_data_dir.exists():
            path = in_data_dir
    if not path_text or not path.is_dir():
        raise DatasetNotFoundError(
            f"dataset {name!r}: {path_text!r} is not a folder. Give 'folder:PATH' with PATH a "
            "folder holding one subfolder of images per class (or train/ and test/ folders "
            "laid out that way)."
        )
    train_dir = path / "train"
    test_dir = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        train_paths, train_targets, classes = _scan_image_folder(train_dir)
        test_paths, test_targets, test_classes = _scan_image_folder(test_dir)
        if classes != test_classes:
            raise InvalidSettingsError(
                f"the class folders of {train_dir} {classes} and {test_dir} {test_classes} "
                "differ; both need the same class subfolders (an empty test class needs at "
                "least one image)."
            )
        train_x = stack_images(train_paths, train_dir)
        test_x = stack_images(test_paths, test_dir)
        if train_x.shape[1:] != test_x.shape[1:]:
            raise InvalidSettingsError(
                f"images in {train_dir} are (C, H, W) = {tuple(train_x.shape[1:])} but in "
                f"{test_dir} {tuple(test_x.shape[1:])}; resize them all to the same size."
            )
        train_y = torch.tensor(train_targets, dtype=torch.int64)
        test_y = torch.tensor(test_targets, dtype=torch.int64)
    elif train_dir.is_dir() or test_dir is not None:
        present = train_dir if train_dir.is_dir() else test_dir
        raise InvalidSettingsError(
            f"{path} has {present} but not both train/ and test/ (or val/); add the missing one, "
            "or put the class folders directly in the folder to split it 80/20 automatically."
        )
    else:
        from sklearn.model_selection import train_test_split

        paths, targets, classes = _scan_image_folder(path)
        x = stack_images(paths, path)
        y = torch.tensor(targets, dtype=torch.int64)
        try:
            train_idx, test_idx = train_test_split(
                np.arange(len(targets)), test_size=0.2, random_state=0, stratify=targets
            )
        except ValueError as err:
            raise InvalidSettingsError(
                f"cannot split the {len(targets)} images of {path} into 80% train and 20% test "
                f"stratified by class: {err}. Add images (every class needs at least 2, and the "
                "test part needs one per class) or give the folder train/ and test/ subfolders."
            ) from err
        train_index = torch.from_numpy(np.asarray(train_idx, dtype=np.int64))
        test_index = torch.from_numpy(np.asarray(test_idx, dtype=np.int64))
        train_x, train_y = x[train_index], y[train_index]
        test_x, test_y = x[test_index], y[test_index]
    return make_splits(name, train_x, train_y, test_x, test_y, classes)
