"""``cifar10`` and ``cifar100``: pickled batches, read without executing code from the files."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from amnesiac.data.locate import download_root, not_found, search_folders, torchvision_download
from amnesiac.data.splits import Splits, make_splits
from amnesiac.errors import AmnesiacError, InvalidSettingsError

__all__ = ["load_cifar"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _CifarLayout:
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    labels_key: str
    names_key: str
    torchvision_class: str


_CIFAR = {
    "cifar10": _CifarLayout(
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        labels_key="labels",
        names_key="label_names",
        torchvision_class="CIFAR10",
    ),
    "cifar100": _CifarLayout(
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        labels_key="fine_labels",
        names_key="fine_label_names",
        torchvision_class="CIFAR100",
    ),
}

_LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"})


def _latin1_encode(text: object, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to what pickle protocol 2 uses to store ``bytes``."""
    if not isinstance(text, str) or encoding.lower() not in _LATIN1_NAMES or errors != "strict":
        raise pickle.UnpicklingError(
            f"_codecs.encode called with ({type(text).__name__}, {encoding!r}, {errors!r}); "
            "only (str, 'latin1') is allowed"
        )
    return text.encode("latin-1")


_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's _reconstruct, whatever its module.
_CIFAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that only builds what CIFAR batch files hold.

    The files hold dicts, lists, strings, bytes, ints and one NumPy array; the only globals they
    need are NumPy's array reconstruction and (for files written by Python 3 with protocol 2)
    ``_codecs.encode`` with latin-1. Anything else (``os.system``, ``builtins.eval``, ...) is
    refused, so a tampered file cannot run code.
    """

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        allowed = _CIFAR_GLOBALS.get((module, name))
        if allowed is None:
            raise InvalidSettingsError(
                f"refusing to load {self._path}: it asks for {module}.{name}, which CIFAR files "
                "never contain, so it is not a genuine CIFAR batch file and may be malicious. "
                "Delete the folder and download the dataset again (download=True / --download)."
            )
        return allowed


def _read_cifar_file(path: Path) -> dict[str, Any]:
    """Read one CIFAR pickle file with :class:`_CifarUnpickler`; keys become ``str``."""
    try:
        with path.open("rb") as handle:
            content = _CifarUnpickler(handle, path).load()
    except AmnesiacError:
        raise
    except Exception as err:  # Unpickling a corrupt file can raise nearly anything.
        raise InvalidSettingsError(
            f"cannot read CIFAR file {path}: {type(err).__name__}: {err}. The file is corrupt or "
            "truncated; download the dataset again."
        ) from err
    if not isinstance(content, dict):
        raise InvalidSettingsError(
            f"CIFAR file {path} holds a {type(content).__name__}, not a dict; it is not a CIFAR "
            "batch file. Download the dataset again."
        )
    return {_as_str(key): value for key, value in content.items()}


def _as_str(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _check_cifar_batch(
    path: Path, batch: dict[str, Any], labels_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return a batch's images ``(N, 3, 32, 32)`` uint8 and labels int64, or say what is wrong."""
    data, raw_labels = batch.get("data"), batch.get(labels_key)
    problems: list[str] = []
    images = np.zeros((0, 3, 32, 32), dtype=np.uint8)
    labels = np.zeros(0, dtype=np.int64)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        problems.append("'data' must be a 2-D uint8 array")
    elif data.shape[1] != 3 * 32 * 32:
        problems.append(f"'data' rows have {data.shape[1]} values; expected 3072 (3x32x32)")
    else:
        images = data.reshape(-1, 3, 32, 32)
    try:
        if not isinstance(raw_labels, (list, np.ndarray)):
            raise TypeError
        labels = np.asarray(raw_labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        problems.append(f"{labels_key!r} must be a list of integers")
    else:
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            problems.append(f"labels must be in [0, {num_classes - 1}]")
    if not problems and len(labels) != len(images):
        problems.append(f"{len(images)} images but {len(labels)} labels")
    if problems:
        raise InvalidSettingsError(
            f"CIFAR file {path} is not a valid batch: {'; '.join(problems)}. "
            "Download the dataset again."
        )
    return images, labels


def _read_cifar_batches(
    paths: Sequence[Path], labels_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read and check batch files; return images ``(N, 3, 32, 32)`` uint8 and labels int64."""
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for path in paths:
        batch_images, batch_labels = _check_cifar_batch(
            path, _read_cifar_file(path), labels_key, num_classes
        )
        images.append(batch_images)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def _cifar_candidates(name: str, layout: _CifarLayout, roots: Sequence[Path]) -> list[Path]:
    folders: list[Path] = []
    for root in roots:
        folders += [root / layout.folder, root, root / name / layout.folder, root / name]
    return folders


def _find_cifar_folder(layout: _CifarLayout, folders: Sequence[Path]) -> Path | None:
    needed = (*layout.train, *layout.test, layout.meta)
    for folder in folders:
        if folder.is_dir() and all((folder / file).is_file() for file in needed):
            return folder
    return None


def load_cifar(name: str, data_dir: str | Path | None, download: bool) -> Splits:
    """Find (or download), read and check the batch files of ``cifar10`` or ``cifar100``."""
    layout = _CIFAR[name]
    folders = search_folders(name, data_dir, lambda roots: _cifar_candidates(name, layout, roots))
    folder = _find_cifar_folder(layout, folders)
    if folder is None and download:
        root = download_root(data_dir)
        torchvision_download(name, layout.torchvision_class, root)
        folder = _find_cifar_folder(layout, [root / layout.folder])
    if folder is None:
        raise not_found(
            name,
            [f"{layout.folder}/{f}" for f in (*layout.train, *layout.test, layout.meta)],
            folders,
        )
    logger.info("reading %s from %s", name, folder)

    meta = _read_cifar_file(folder / layout.meta)
    names = meta.get(layout.names_key)
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, (str, bytes)) for n in names)
    ):
        raise InvalidSettingsError(
            f"CIFAR file {folder / layout.meta} has no list of class names under "
            f"{layout.names_key!r}; download the dataset again."
        )
    classes = [_as_str(n) for n in names]
    train_x, train_y = _read_cifar_batches(
        [folder / f for f in layout.train], layout.labels_key, len(classes)
    )
    test_x, test_y = _read_cifar_batches(
        [folder / f for f in layout.test], layout.labels_key, len(classes)
    )
    return make_splits(
        name,
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        classes,
    )
