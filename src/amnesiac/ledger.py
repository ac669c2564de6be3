"""A tamper-evident deletion ledger: one JSON line per unlearning request, in a hash chain.

Each entry records what was deleted (the forget indices, or their SHA-256), from which model
(its SHA-256) into which model (path and SHA-256), with which method and settings, the measured
accuracies and the versions, plus ``prev_hash`` (the previous entry's ``hash``) and ``hash``
(SHA-256 of the entry's canonical JSON without ``hash``). Editing any entry breaks its own hash;
removing or reordering entries breaks the chain.

Writes are atomic: the whole file is rewritten through a temporary file in the same folder,
fsynced and renamed, so a reader (or a crash) sees the ledger before or after an append, never
a torn line. The order of a request is: write the output model atomically, then append the
entry. A crash between the two leaves a model file the ledger does not mention; rerunning the
same request rewrites that model (the run is deterministic) and appends the entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amnesiac._io import atomic_write_bytes
from amnesiac.errors import AmnesiacError

GENESIS = "0" * 64


class LedgerError(AmnesiacError):
    """A ledger that cannot be read, whose chain is broken, or a request it refuses."""


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


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of ``entry`` without its ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def indices_sha256(indices: list[int]) -> str:
    """SHA-256 of a list of indices as the ledger stores it."""
    return hashlib.sha256(canonical([int(i) for i in indices])).hexdigest()


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
    """Append one request to the ledger (atomically) and return the stored entry.

    ``fields`` must not contain ``prev_hash`` or ``hash``; they are added here.
    """
    path = Path(path)
    entries = checked_entries(path)
    prev = entries[-1]["hash"] if entries else GENESIS
    entry = {**fields, "prev_hash": prev}
    entry["hash"] = entry_hash(entry)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + canonical(entry) + b"\n")
    return entry
