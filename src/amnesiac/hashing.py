"""The hashes amnesiac records: of a file, of a ledger entry, and the one hash of a forget set
(used by the ledger, reports, checkpoints and bench rows alike)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import Tensor


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes hashed by the ledger (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def canonical_sha256(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical` ``value``."""
    return hashlib.sha256(canonical(value)).hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of ``entry`` without its ``hash`` field."""
    return canonical_sha256({k: v for k, v in entry.items() if k != "hash"})


def forget_sha256(indices: Iterable[int] | Tensor) -> str:
    """The one hash of a forget set, used by the ledger, reports, checkpoints and bench rows.

    SHA-256 (hex) of the canonical JSON (:func:`canonical`) of the set's indices as a sorted
    list of distinct integers, so the same set gives the same hash whatever its order.

    Example:
        >>> import hashlib
        >>> forget_sha256([42, 3, 17]) == hashlib.sha256(b"[3,17,42]").hexdigest()
        True
    """
    values = indices.tolist() if isinstance(indices, Tensor) else indices
    return canonical_sha256(sorted({int(i) for i in values}))


def _legacy_forget_sha256(indices: Iterable[int]) -> str:
    """The ledger's hash before :func:`forget_sha256`: the list in its stored order."""
    return canonical_sha256([int(i) for i in indices])


def forget_hash_matches(indices: Iterable[int], recorded: str) -> bool:
    """Whether ``recorded`` is the hash of ``indices`` (today's form, or an old ledger's)."""
    values = list(indices)
    return recorded in (forget_sha256(values), _legacy_forget_sha256(values))
