"""Datasets by name: ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, folders.

:func:`load_dataset` returns a :class:`Splits`: train and test tensors in [0, 1], the class names,
and the per-channel mean and standard deviation of the training images (for the model's
``Normalize`` layer). Nothing is cached on disk; files are read with small, dependency-free
readers (IDX for MNIST-style files, a restricted unpickler for CIFAR) so loading is fast and never
executes code from a data file.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from amnesiac._names import suggest
from amnesiac.errors import (
    AmnesiacError,
    DatasetNotFoundError,
    InvalidSettingsError,
    UnknownNameError,
)

__all__ = ["Splits", "list_datasets", "load_dataset", "read_idx"]

logger = logging.getLogger(__name__)

ENV_VAR = "AMNESIAC_DATA"
"""Environment variable with extra folders to search (several separated by ``os.pathsep``)."""

_FOLDER_PREFIX = "folder:"

# Folders searched last, per dataset (Debian's ``dataset-fashion-mnist`` package).
_SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset's train and test splits as tensors, with class names and channel statistics.

    Attributes:
        name: The dataset name it was loaded by, e.g. ``"fashion-mnist"``.
        train_x: Training images.
        train_y: Training labels.
        test_x: Test images.
        test_y: Test labels.
        classes: Class names; label ``i`` means ``classes[i]``.
        mean: Per-channel mean of ``train_x``.
        std: Per-channel standard deviation of ``train_x`` (population, never 0).

    Shape:
        - train_x, test_x: ``(N, C, H, W)`` float32 in [0, 1].
        - train_y, test_y: ``(N,)`` int64 in ``[0, num_classes)``.

    Raises:
        InvalidSettingsError: If shapes, dtypes, labels or statistics do not fit together.

    Example:
        >>> splits = load_dataset("digits")
        >>> splits.input_shape, splits.num_classes, len(splits.train())
        ((1, 8, 8), 10, 1347)
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        problems: list[str] = []
        for split, x, y in (
            ("train", self.train_x, self.train_y),
            ("test", self.test_x, self.test_y),
        ):
            if x.dim() != 4 or x.dtype != torch.float32:
                problems.append(
                    f"{split}_x is {x.dtype} of shape {tuple(x.shape)}; expected float32 "
                    "(N, C, H, W)"
                )
            elif x.numel() > 0:
                low, high = torch.aminmax(x)
                if not (float(low) >= 0.0 and float(high) <= 1.0):  # Also catches NaN.
                    problems.append(
                        f"{split}_x values range over [{float(low):g}, {float(high):g}]; they "
                        "must be in [0, 1] (put normalization inside the model)"
                    )
            if y.dim() != 1 or y.dtype != torch.int64:
                problems.append(
                    f"{split}_y is {y.dtype} of shape {tuple(y.shape)}; expected int64 (N,)"
                )
            elif y.numel() > 0 and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                problems.append(
                    f"{split}_y has labels in [{int(y.min())}, {int(y.max())}] but there are "
                    f"{len(self.classes)} classes; labels must be in [0, {len(self.classes) - 1}]"
                )
            if x.dim() >= 1 and y.dim() >= 1 and x.shape[0] != y.shape[0]:
                problems.append(f"{split}_x has {x.shape[0]} images but {split}_y has {y.shape[0]}")
            if x.dim() >= 1 and x.shape[0] == 0:
                problems.append(f"the {split} split is empty")
        if self.train_x.dim() == 4 and self.test_x.dim() == 4:
            if self.train_x.shape[1:] != self.test_x.shape[1:]:
                problems.append(
                    f"train images are {tuple(self.train_x.shape[1:])} but test images are "
                    f"{tuple(self.test_x.shape[1:])}; both must have the same (C, H, W)"
                )
            channels = self.train_x.shape[1]
            if len(self.mean) != channels or len(self.std) != channels:
                problems.append(
                    f"mean has {len(self.mean)} and std {len(self.std)} values for {channels} "
                    "channels; give one per channel"
                )
        if any(not s > 0.0 for s in self.std):
            problems.append(f"std {self.std} must be positive (use 1.0 for a constant channel)")
        if not self.classes:
            problems.append("classes is empty; give one name per class")
        if problems:
            raise InvalidSettingsError(
                f"invalid splits for dataset {self.name!r}:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )

    @property
    def num_classes(self) -> int:
        """The number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape ``(C, H, W)`` of one image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def train(self) -> TensorDataset:
        """Return the training split as a ``TensorDataset(train_x, train_y)``."""
        return TensorDataset(self.train_x, self.train_y)

    def test(self) -> TensorDataset:
        """Return the test split as a ``TensorDataset(test_x, test_y)``."""
        return TensorDataset(self.test_x, self.test_y)

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Splits(name={self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
            f"input_shape=({c}, {h}, {w}), num_classes={self.num_classes})"
        )


def list_datasets() -> list[str]:
    """Return the names :func:`load_dataset` accepts, sorted.

    ``folder:PATH`` (an image folder) is accepted too and is not listed.

    Example:
        >>> list_datasets()
        ['cifar10', 'cifar100', 'digits', 'fashion-mnist', 'mnist']
    """
    return sorted(_LOADERS)


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, download: bool = False
) -> Splits:
    """Load a dataset by name as train and test tensors.

    Files are searched in ``data_dir`` (the folder itself, ``data_dir/<name>``, or torchvision's
    layout such as ``data_dir/FashionMNIST/raw`` or ``data_dir/cifar-10-batches-py``), then in the
    folders listed in ``$AMNESIAC_DATA`` (same layouts), then in system folders (Debian's
    ``/usr/share/datasets/fashion-mnist``) and the download folder
    (``$XDG_CACHE_HOME/amnesiac/data``, by default ``~/.cache/amnesiac/data``).

    Args:
        name: One of :func:`list_datasets` (case-insensitive, ``_`` may replace ``-``), or
            ``folder:PATH`` for an image folder: class subfolders, either directly in ``PATH``
            (split 80/20, stratified, with a fixed seed) or under ``PATH/train`` and ``PATH/test``
            (or ``PATH/val``). ``digits`` is scikit-learn's bundled 8x8 digits, split into 1347
            train and 450 test images, stratified, with a fixed seed.
        data_dir: A folder to search first. Downloads go here when given.
        download: Download the files with torchvision if they are not found (needs a network).

    Returns:
        The :class:`Splits`, the same on every call.

    Raises:
        UnknownNameError: If the name is not a known dataset.
        DatasetNotFoundError: If the files are not found and ``download`` is false, or the
            download failed. The message lists the folders searched.
        InvalidSettingsError: If a file is corrupt, unsafe, or images differ in size.

    Example:
        >>> splits = load_dataset("digits")
        >>> splits.train_x.shape, splits.test_x.shape
        (torch.Size([1347, 1, 8, 8]), torch.Size([450, 1, 8, 8]))
    """
    if not isinstance(name, str):
        raise InvalidSettingsError(
            f"dataset name must be a string, got {type(name).__name__} {name!r}"
        )
    if name.startswith(_FOLDER_PREFIX):
        return _load_folder(name, name[len(_FOLDER_PREFIX) :], data_dir)
    key = name.strip().lower().replace("_", "-")
    loader = _LOADERS.get(key)
    if loader is None:
        raise UnknownNameError(
            suggest(name, _LOADERS, "dataset")
            + f" Or use '{_FOLDER_PREFIX}PATH' for a folder of images, one subfolder per class."
        )
    splits = loader(key, data_dir, download)
    logger.info("loaded %r", splits)
    return splits


# --------------------------------------------------------------------------------------------
# Shared helpers


def _make_splits(
    name: str,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    classes: Sequence[str],
) -> Splits:
    """Build :class:`Splits` from images as float32 in [0, 1] or as uint8 pixels (0 to 255).

    The channel statistics come from the training images: exactly, from pixel-value counts, when
    they are uint8 (much faster than ``torch.std_mean`` on 60000 images).
    """
    if train_x.dtype == torch.uint8:
        mean, std = _uint8_channel_stats(train_x)
    else:
        std_t, mean_t = torch.std_mean(train_x, dim=(0, 2, 3), correction=0)
        mean, std = tuple(float(m) for m in mean_t), tuple(float(s) for s in std_t)
    if any(s == 0.0 for s in std):
        logger.warning("%s has a constant channel (std 0); using std 1.0 for it", name)
        std = tuple(s if s > 0.0 else 1.0 for s in std)
    return Splits(
        name=name,
        train_x=_to_unit_float(train_x),
        train_y=train_y,
        test_x=_to_unit_float(test_x),
        test_y=test_y,
        classes=tuple(classes),
        mean=mean,
        std=std,
    )


def _uint8_channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 ``(N, C, H, W)`` images, scaled to [0, 1]."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means: list[float] = []
    stds: list[float] = []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        variance = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(float(mean))
        stds.append(float(variance.sqrt()))
    return tuple(means), tuple(stds)


def _to_unit_float(images: Tensor) -> Tensor:
    """Return uint8 pixels as float32 ``pixels / 255``; float32 images are returned as they are."""
    if images.dtype != torch.uint8:
        return images
    # torch's multi-threaded conversion is several times faster than numpy's astype.
    return images.to(torch.float32).div_(255.0)


def _default_download_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "amnesiac" / "data"


def _search_roots(data_dir: str | Path | None) -> list[Path]:
    """Return the user-given roots: ``data_dir``, then each folder of ``$AMNESIAC_DATA``."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR, "")
    roots.extend(Path(part).expanduser() for part in env.split(os.pathsep) if part)
    return roots


def _download_root(data_dir: str | Path | None) -> Path:
    roots = _search_roots(data_dir)
    return roots[0] if roots else _default_download_dir()


def _dedupe(paths: Sequence[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def _not_found(name: str, files: Sequence[str], searched: Sequence[Path]) -> DatasetNotFoundError:
    ways = []
    if name == "fashion-mnist":
        ways.append("install Debian's package (apt-get install dataset-fashion-mnist)")
    ways += [
        f"put the files in a folder and pass it as data_dir (--data-dir) or list it in ${ENV_VAR}",
        "pass download=True (--download) to fetch them with torchvision",
    ]
    listed = "\n".join(f"  - {p}" for p in searched) or "  (no folders)"
    return DatasetNotFoundError(
        f"cannot find the {name} files ({', '.join(files)}). Searched:\n{listed}\n"
        f"To get them: {'; or '.join(ways)}."
    )


def _torchvision_download(name: str, class_name: str, root: Path) -> None:
    """Download a dataset with torchvision's class ``class_name`` into ``root``."""
    import torchvision.datasets

    logger.info("downloading %s into %s with torchvision", name, root)
    dataset_class = getattr(torchvision.datasets, class_name)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            dataset_class(root=str(root), train=train, download=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise DatasetNotFoundError(
            f"could not download {name} into {root}: {err}. Check the network connection, or "
            f"get the files another way and pass their folder as data_dir (--data-dir)."
        ) from err


# --------------------------------------------------------------------------------------------
# digits (scikit-learn, bundled)


def _load_digits(name: str, data_dir: str | Path | None, download: bool) -> Splits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32) / np.float32(16.0)
    labels = np.asarray(digits.target, dtype=np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=450, random_state=0, stratify=labels
    )
    return _make_splits(
        name,
        torch.from_numpy(np.ascontiguousarray(train_x)).unsqueeze(1),
        torch.from_numpy(np.ascontiguousarray(train_y)),
        torch.from_numpy(np.ascontiguousarray(test_x)).unsqueeze(1),
        torch.from_numpy(np.ascontiguousarray(test_y)),
        [str(i) for i in range(10)],
    )


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files)

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


def _load_idx_dataset(name: str, data_dir: str | Path | None, download: bool) -> Splits:
    roots = _search_roots(data_dir)
    folders = _idx_candidates(name, roots)
    folders += list(_SYSTEM_DIRS.get(name, ()))
    folders += _idx_candidates(name, [_default_download_dir()])
    folders = _dedupe(folders)
    files = _find_idx_folder(name, folders)
    if files is None and download:
        root = _download_root(data_dir)
        _torchvision_download(name, _IDX_TORCHVISION[name], root)
        files = _find_idx_folder(name, _idx_candidates(name, [root]))
    if files is None:
        raise _not_found(name, [f"{stem}[.gz]" for stem in _IDX_FILES.values()], folders)
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
    return _make_splits(
        name,
        torch.from_numpy(arrays["train_x"]).unsqueeze(1),
        torch.from_numpy(arrays["train_y"].astype(np.int64)),
        torch.from_numpy(arrays["test_x"]).unsqueeze(1),
        torch.from_numpy(arrays["test_y"].astype(np.int64)),
        classes,
    )


# --------------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100 (pickled batches, read without executing code)


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


def _load_cifar(name: str, data_dir: str | Path | None, download: bool) -> Splits:
    layout = _CIFAR[name]
    roots = [*_search_roots(data_dir), _default_download_dir()]
    folders = _dedupe(_cifar_candidates(name, layout, roots))
    folder = _find_cifar_folder(layout, folders)
    if folder is None and download:
        root = _download_root(data_dir)
        _torchvision_download(name, layout.torchvision_class, root)
        folder = _find_cifar_folder(layout, [root / layout.folder])
    if folder is None:
        raise _not_found(
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
    return _make_splits(
        name,
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        classes,
    )


# --------------------------------------------------------------------------------------------
# folder:PATH (torchvision ImageFolder layout)

_CONVERT_MODES = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def _load_image(path: str) -> Tensor:
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


def _stack_images(paths: Sequence[str], root: Path) -> Tensor:
    images = [_load_image(path) for path in paths]
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


def _load_folder(name: str, path_text: str, data_dir: str | Path | None) -> Splits:
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
        train_x = _stack_images(train_paths, train_dir)
        test_x = _stack_images(test_paths, test_dir)
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
        x = _stack_images(paths, path)
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
    return _make_splits(name, train_x, train_y, test_x, test_y, classes)


_LOADERS: dict[str, Callable[[str, str | Path | None, bool], Splits]] = {
    "digits": _load_digits,
    "mnist": _load_idx_dataset,
    "fashion-mnist": _load_idx_dataset,
    "cifar10": _load_cifar,
    "cifar100": _load_cifar,
}
