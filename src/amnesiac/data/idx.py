"""``mnist`` and ``fashion-mnist``: IDX files (gzipped or not) read with a small reader."""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from amnesiac.data.locate import download_root, not_found, search_folders, torchvision_download
from amnesiac.data.splits import Splits, make_splits
from amnesiac.errors import InvalidSettingsError

__all__ = ["load_idx", "read_idx"]

logger = logging.getLogger(__name__)

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_IDX_CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
_IDX_KIND = {1: "labels", 3: "images"}


def read_idx(path: str | Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (as used by MNIST), gzipped or not.

    Args:
        path: The file; a name ending in ``.gz`` is decompressed.
        ndim: The expected number of dimensions: 3 for images (magic number 2051), 1 for labels
            (magic number 2049).

    Returns:
        A ``uint8`` array with the dimensions from the file's header, e.g. ``(60000, 28, 28)``.

    Raises:
        InvalidSettingsError: If the file is not valid gzip, has the wrong magic number, or its
            size does not match its header.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise InvalidSettingsError(
            f"cannot read IDX file {path}: {err}. The file is corrupt or truncated; "
            "download it again."
        ) from err
    expected_magic = 0x0800 + ndim
    what = _IDX_KIND.get(ndim, f"{ndim}-D")
    if len(raw) < 4:
        raise InvalidSettingsError(
            f"IDX file {path} has only {len(raw)} bytes, too few for a header; the file is "
            "truncated or corrupt, download it again."
        )
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise InvalidSettingsError(
            f"IDX file {path} starts with magic number {magic}; expected {expected_magic} "
            f"(unsigned-byte {what}, {ndim} dimensions). The file is not an IDX {what} file, "
            "is in the wrong place, or is corrupt; download it again."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InvalidSettingsError(
            f"IDX file {path} is truncated inside its header ({len(raw)} bytes); download it again."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected_size = int(np.prod(dims, dtype=np.int64))
    actual_size = len(raw) - header
    if actual_size != expected_size:
        raise InvalidSettingsError(
            f"IDX file {path} has a header for {what} of shape {dims} ({expected_size} bytes of "
            f"data) but holds {actual_size} bytes; the file is truncated or corrupt, download it "
            "again."
        )
    # A bytearray makes the array writable, so torch.from_numpy can share it without a warning.
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(dims)


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # Some mirrors name them train-images.idx3-ubyte.
    for candidate in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def _idx_candidates(name: str, roots: Sequence[Path]) -> list[Path]:
    folders: list[Path] = []
    for root in roots:
        folders += [root, root / name, root / _IDX_TORCHVISION[name] / "raw"]
    return folders


def _find_idx_folder(name: str, folders: Sequence[Path]) -> dict[str, Path] | None:
    for folder in folders:
        if not folder.is_dir():
            continue
        found = {key: _find_idx_file(folder, stem) for key, stem in _IDX_FILES.items()}
        if all(path is not None for path in found.values()):
            return {key: path for key, path in found.items() if path is not None}
    return None


def load_idx(name: str, data_dir: str | Path | None, download: bool) -> Splits:
    """Find (or download), read and check the four IDX files of ``mnist`` or ``fashion-mnist``."""
    folders = search_folders(name, data_dir, lambda roots: _idx_candidates(name, roots))
    files = _find_idx_folder(name, folders)
    if files is None and download:
        root = download_root(data_dir)
        torchvision_download(name, _IDX_TORCHVISION[name], root)
        files = _find_idx_folder(name, _idx_candidates(name, [root]))
    if files is None:
        raise not_found(name, [f"{stem}[.gz]" for stem in _IDX_FILES.values()], folders)
    logger.info("reading %s from %s", name, files["train_x"].parent)

    arrays = {
        key: read_idx(path, ndim=3 if key.endswith("x") else 1) for key, path in files.items()
    }
    classes = _IDX_CLASSES[name]
    problems: list[str] = []
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(x) != len(y):
            problems.append(
                f"{files[f'{split}_x'].name} has {len(x)} images but "
                f"{files[f'{split}_y'].name} has {len(y)} labels"
            )
        if len(y) and int(y.max()) >= len(classes):
            problems.append(
                f"{files[f'{split}_y'].name} has label {int(y.max())}; {name} labels are "
                f"0..{len(classes) - 1}"
            )
        if len(x) == 0:
            problems.append(f"{files[f'{split}_x'].name} has no images")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        problems.append(
            f"train images are {arrays['train_x'].shape[1:]} but test images are "
            f"{arrays['test_x'].shape[1:]}"
        )
    if problems:
        raise InvalidSettingsError(
            f"the {name} files in {files['train_x'].parent} do not fit together:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nThey are corrupt or from different datasets; download them again."
        )
    return make_splits(
        name,
        torch.from_numpy(arrays["train_x"]).unsqueeze(1),
        torch.from_numpy(arrays["train_y"].astype(np.int64)),
        torch.from_numpy(arrays["test_x"]).unsqueeze(1),
        torch.from_numpy(arrays["test_y"].astype(np.int64)),
        classes,
    )
