"""Where dataset files are looked for, and how they are downloaded.

Files are searched in ``data_dir``, then in the folders of ``$AMNESIAC_DATA``, then in system
folders (Debian's ``/usr/share/datasets/fashion-mnist``) and the download folder
(``$XDG_CACHE_HOME/amnesiac/data``). Each format module lays out its own candidate folders under
these roots.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from amnesiac.errors import DatasetNotFoundError

__all__ = [
    "ENV_VAR",
    "dedupe",
    "default_download_dir",
    "download_root",
    "not_found",
    "search_folders",
    "search_roots",
    "system_dirs",
    "torchvision_download",
]

logger = logging.getLogger(__name__)

ENV_VAR = "AMNESIAC_DATA"
"""Environment variable with extra folders to search (several separated by ``os.pathsep``)."""

# Folders searched last, per dataset (Debian's ``dataset-fashion-mnist`` package).
_SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def system_dirs(name: str) -> tuple[Path, ...]:
    """Return the system folders searched last for dataset ``name`` (often none)."""
    return _SYSTEM_DIRS.get(name, ())


def default_download_dir() -> Path:
    """Return the download folder, ``$XDG_CACHE_HOME/amnesiac/data``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "amnesiac" / "data"


def search_roots(data_dir: str | Path | None) -> list[Path]:
    """Return the user-given roots: ``data_dir``, then each folder of ``$AMNESIAC_DATA``."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR, "")
    roots.extend(Path(part).expanduser() for part in env.split(os.pathsep) if part)
    return roots


def search_folders(
    name: str, data_dir: str | Path | None, candidates: Callable[[Sequence[Path]], list[Path]]
) -> list[Path]:
    """Return the folders to search for dataset ``name``, in order, without repeats.

    ``candidates`` gives a format's folders under some roots (e.g. ``root``, ``root/<name>``);
    it is applied to the user-given roots (:func:`search_roots`), then the system folders
    (:func:`system_dirs`) follow as they are, then the candidates under the download folder.
    """
    folders = candidates(search_roots(data_dir))
    folders += list(system_dirs(name))
    folders += candidates([default_download_dir()])
    return dedupe(folders)


def download_root(data_dir: str | Path | None) -> Path:
    """Return where a download goes: the first user-given root, else the download folder."""
    roots = search_roots(data_dir)
    return roots[0] if roots else default_download_dir()


def dedupe(paths: Sequence[Path]) -> list[Path]:
    """Return ``paths`` without repeats, in their first order."""
    seen: set[Path] = set()
    unique: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def not_found(name: str, files: Sequence[str], searched: Sequence[Path]) -> DatasetNotFoundError:
    """Return the error for missing files: what was searched and how to get them."""
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


def torchvision_download(name: str, class_name: str, root: Path) -> None:
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
