"""The ledger file itself: reading it, its hash chain, the rules of where each request starts,
and the locked append. :class:`amnesiac.Ledger` (``amnesiac.ledger``) is built on these."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amnesiac._io import atomic_write_bytes, file_lock
from amnesiac.errors import AmnesiacError, InvalidSettingsError
from amnesiac.hashing import (
    canonical,
    entry_hash,
    forget_sha256,
)

if TYPE_CHECKING:
    pass

GENESIS = "0" * 64


class LedgerError(AmnesiacError):
    """A ledger that cannot be read, whose chain is broken, or a request it refuses."""


def entry_forgets(entry: dict[str, Any], sha256: str) -> bool:
    """Whether ``entry`` records the forget set whose :func:`forget_sha256` is ``sha256`` (from
    its stored indices where it has them, so entries of old ledgers match too)."""
    if "forget_indices" in entry:
        return forget_sha256(entry["forget_indices"]) == sha256
    return entry.get("forget_sha256") == sha256


def find_entry(
    entries: list[dict[str, Any]],
    *,
    output_sha256: str | None = None,
    forget_sha256: str | None = None,
) -> int | None:
    """Position of the latest entry that produced the model ``output_sha256`` and forgot the
    set ``forget_sha256`` (each only where given), or ``None``.

    Example:
        >>> entries = [{"output_sha256": "a", "forget_indices": [1, 2]}, {"output_sha256": "b"}]
        >>> find_entry(entries, output_sha256="a", forget_sha256=forget_sha256([2, 1]))
        0
        >>> find_entry(entries, output_sha256="c") is None
        True
    """
    if output_sha256 is None and forget_sha256 is None:
        raise InvalidSettingsError("find_entry needs output_sha256 or forget_sha256")
    for i in range(len(entries) - 1, -1, -1):
        e = entries[i]
        if output_sha256 is not None and e.get("output_sha256") != output_sha256:
            continue
        if forget_sha256 is not None and not entry_forgets(e, forget_sha256):
            continue
        return i
    return None


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    """Entries of a ledger file (empty if it does not exist); raises on an unreadable line."""
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise LedgerError(f"ledger {path} is not a file")
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise LedgerError(
                f"ledger {path} line {n} is not valid JSON ({e.msg}); it was edited or damaged"
            ) from None
        if not isinstance(entry, dict):
            raise LedgerError(f"ledger {path} line {n} is not a JSON object")
        entries.append(entry)
    return entries


@dataclass
class ChainProblem:
    """The first entry of a ledger that does not check out."""

    index: int
    request_id: str
    reason: str

    def __str__(self) -> str:
        return f"entry {self.index + 1} (request {self.request_id}): {self.reason}"


def check_chain(entries: list[dict[str, Any]]) -> ChainProblem | None:
    """The first entry whose hash or link is wrong, or ``None`` when the chain holds."""
    prev = GENESIS
    for i, e in enumerate(entries):
        rid = str(e.get("request_id", "?"))
        if e.get("prev_hash") != prev:
            return ChainProblem(i, rid, "prev_hash does not match the previous entry's hash")
        try:
            h = entry_hash(e)
        except ValueError as err:
            return ChainProblem(i, rid, f"cannot be hashed: {err}")
        if e.get("hash") != h:
            return ChainProblem(i, rid, "its hash does not match its contents (it was edited)")
        prev = h
    return None


def checked_entries(path: str | Path) -> list[dict[str, Any]]:
    """Entries of ``path`` after checking the chain; raises :class:`LedgerError` if broken."""
    entries = read_ledger(path)
    problem = check_chain(entries)
    if problem is not None:
        raise LedgerError(f"ledger {path} is broken at {problem}; restore it from a backup")
    return entries


def start_problem(entries: list[dict[str, Any]], i: int) -> str | None:
    """Why entry ``i`` did not start where the ledger's rules say it must, or ``None``.

    A chained request starts from the model the previous request produced. A request marked
    ``"from_original": true`` re-solves every request so far from the original model instead: it
    starts from the first request's input model, and its forget indices hold every earlier
    request's (where the indices are stored, not only their hash).
    """
    if i == 0:
        return None
    e = entries[i]
    if not e.get("from_original"):
        if e.get("input_sha256") != entries[i - 1].get("output_sha256"):
            return "it did not start from the previous request's model"
        return None
    if e.get("input_sha256") != entries[0].get("input_sha256"):
        return (
            "it re-solves from the original model but did not start from the first request's input"
        )
    if "forget_indices" in e:
        have = {int(v) for v in e["forget_indices"]}
        for earlier in entries[:i]:
            if not {int(v) for v in earlier.get("forget_indices", [])} <= have:
                return (
                    "it re-solves from the original model but leaves out instances of request "
                    f"{earlier.get('request_id')}"
                )
    return None


def current_model(entries: list[dict[str, Any]]) -> tuple[str, str] | None:
    """``(path, sha256)`` of the model the latest entry produced, or ``None`` for no entries."""
    if not entries:
        return None
    last = entries[-1]
    return str(last["output_model"]), str(last["output_sha256"])


def append_entry(path: str | Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Append one request to the ledger (atomically, under the ledger's lock) and return the
    stored entry.

    ``fields`` must not contain ``prev_hash`` or ``hash``; they are added here.
    """
    with file_lock(path):
        return _append(Path(path), checked_entries(path), fields)


def _append(path: Path, entries: list[dict[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
    """Append ``fields`` after ``entries`` (read under the lock the caller holds)."""
    prev = entries[-1]["hash"] if entries else GENESIS
    entry = {**fields, "prev_hash": prev}
    entry["hash"] = entry_hash(entry)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + canonical(entry) + b"\n")
    return entry
