"""Datasets by name: ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, folders.

:func:`load_dataset` returns a :class:`Splits`: train and test tensors in [0, 1], the class names,
and the per-channel mean and standard deviation of the training images (for the model's
``Normalize`` layer). Nothing is cached on disk; files are read with small, dependency-free
readers (IDX for MNIST-style files, a restricted unpickler for CIFAR) so loading is fast and never
executes code from a data file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from amnesiac._names import suggest
from amnesiac.data.cifar import load_cifar
from amnesiac.data.digits import load_digits
from amnesiac.data.folder import load_folder
from amnesiac.data.idx import load_idx, read_idx
from amnesiac.data.locate import ENV_VAR as ENV_VAR
from amnesiac.data.splits import Splits, make_splits
from amnesiac.errors import InvalidSettingsError, UnknownNameError

__all__ = ["Splits", "list_datasets", "load_dataset", "read_idx"]

logger = logging.getLogger(__name__)

_FOLDER_PREFIX = "folder:"
_HEAD = re.compile(r"^(?P<base>.+)\[:(?P<n>[^\]]*)\]$")

_LOADERS: dict[str, Callable[[str, str | Path | None, bool], Splits]] = {
    "digits": load_digits,
    "mnist": load_idx,
    "fashion-mnist": load_idx,
    "cifar10": load_cifar,
    "cifar100": load_cifar,
}


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
        name: One of :func:`list_datasets` (case-insensitive, ``_`` may replace ``-``),
            optionally followed by ``[:N]`` for its first ``N`` training images only (the test
            split whole; channel statistics from those ``N``), e.g. ``fashion-mnist[:10000]``
            for a model that sees less data and memorizes more; or
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
    head = _HEAD.match(name.strip())
    if head is not None:
        return _first(load_dataset(head["base"], data_dir, download=download), head["n"])
    if name.startswith(_FOLDER_PREFIX):
        return load_folder(name, name[len(_FOLDER_PREFIX) :], data_dir)
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


def _first(full: Splits, n_text: str) -> Splits:
    """``full`` with its first ``n_text`` training images only (the ``NAME[:N]`` form)."""
    n_train = len(full.train_y)
    if not n_text.isdigit() or not 1 <= int(n_text) <= n_train:
        raise InvalidSettingsError(
            f"'{full.name}[:{n_text}]': N must be a whole number from 1 to the {n_train} training "
            f"images of {full.name}"
        )
    n = int(n_text)
    return make_splits(
        f"{full.name}[:{n}]",
        full.train_x[:n].clone(),
        full.train_y[:n].clone(),
        full.test_x,
        full.test_y,
        full.classes,
    )
