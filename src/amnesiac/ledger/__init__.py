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

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from amnesiac._io import file_lock
from amnesiac._versions import software_versions, utc_stamp
from amnesiac.data.anchors import RequestRows, split_request
from amnesiac.hashing import (
    canonical,
    canonical_sha256,
    file_sha256,
    forget_hash_matches,
    forget_sha256,
)
from amnesiac.models.checkpoint import checkpoint_meta
from amnesiac.records import LedgerEntry, RecordError

if TYPE_CHECKING:
    from amnesiac.data import Splits

from amnesiac.ledger.chain import (
    GENESIS,
    ChainProblem,
    LedgerError,
    _append,
    append_entry,
    check_chain,
    checked_entries,
    current_model,
    entry_forgets,
    find_entry,
    read_ledger,
    start_problem,
)

__all__ = [
    "GENESIS",
    "ChainProblem",
    "Ledger",
    "LedgerError",
    "Request",
    "Verified",
    "append_entry",
    "canonical",
    "check_chain",
    "checked_entries",
    "current_model",
    "entry_forgets",
    "file_sha256",
    "find_entry",
    "forget_sha256",
    "read_ledger",
    "start_problem",
]


@dataclass(frozen=True)
class Request:
    """A deletion request checked against a ledger, from :meth:`Ledger.request`.

    Attributes:
        request_id: Its identifier in the ledger.
        forget_indices: The training indices the run must forget: the request's own, or, for a
            request re-solved from the original model, every request's so far.
        input_model: The model the run must start from.
        output_model: Where the run's model must be written before :meth:`Ledger.record`.
        done: The ledger's latest entry is already this request and its model is in place, so
            there is nothing to run.
        fields: The entry's fields known before the run.
        rows: The request split on the input model's anchors
            (:func:`amnesiac.split_request`): ``rows.forget`` is ``forget_indices``; reserved
            anchors it names are ``rows.released``, and the model written for the request must
            carry ``rows.anchors`` as its ``"anchors"`` metadata (:meth:`Ledger.record` checks).
    """

    request_id: str
    forget_indices: list[int]
    input_model: Path
    output_model: Path
    done: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    rows: RequestRows | None = None


@dataclass(frozen=True)
class Verified:
    """What :meth:`Ledger.verify` checked: every entry, and how many D_f accuracies."""

    entries: int
    accuracy_checked: int


class Ledger:
    """A deletion ledger file and the rules of the requests it records.

    The order of a request is: :meth:`request` (checks it may be appended and returns what to
    run), write the output model atomically, then :meth:`record` (appends the entry). A crash in
    between leaves a model the ledger does not mention; the same request run again rewrites it
    and records it.

    Example:
        >>> import tempfile
        >>> ledger = Ledger(Path(tempfile.mkdtemp()) / "ledger.jsonl")
        >>> ledger.entries(), ledger.current_model()
        ([], None)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def entries(self) -> list[dict[str, Any]]:
        """The entries after checking the hash chain (empty when there is no file yet)."""
        return checked_entries(self.path)

    def resolve(self, recorded: str | Path) -> Path:
        """A model path as an entry records it (``input_model`` and ``output_model``, relative
        to the ledger's folder; older entries may hold an absolute input path), made absolute."""
        return (self.path.resolve().parent / recorded).resolve()

    def current_model(self) -> tuple[Path, str] | None:
        """``(path, sha256)`` of the model the latest request produced, or ``None``."""
        current = current_model(self.entries())
        return None if current is None else (self.resolve(current[0]), current[1])

    def request(
        self,
        *,
        dataset: str,
        input_model: str | Path,
        forget_indices: Iterable[int],
        method: str,
        settings: dict[str, Any],
        output_model: str | Path,
        preset: str | None = None,
        request_id: str | None = None,
        store_indices: bool = True,
        from_original: bool = False,
    ) -> Request:
        """Check that a request may be appended, and say what to run for it.

        A chained request starts from the ledger's current model. With ``from_original`` it
        re-solves every request so far from the first request's input model instead (the
        union of their indices and the new ones; each earlier request must have stored its
        indices). Nothing is written.

        Raises:
            LedgerError: The ledger is broken, or the request does not start where the rules
                say (the message names the model it must start from).
        """
        entries = self.entries()
        in_path = Path(input_model)
        in_sha = file_sha256(in_path)
        indices = [int(i) for i in forget_indices]
        if from_original and entries:
            if in_sha != entries[0].get("input_sha256"):
                first = self.resolve(str(entries[0].get("input_model")))
                raise LedgerError(
                    f"{in_path} is not the original model of {self.path}; a request re-solved "
                    f"from the original starts from {first} "
                    f"(sha256 {str(entries[0].get('input_sha256'))[:12]}...)"
                )
            earlier: set[int] = set()
            for e in entries:
                if "forget_indices" not in e:
                    raise LedgerError(
                        f"request {e.get('request_id')} of {self.path} stored only the hash of "
                        "its indices, so it cannot be re-solved from the original model; chain "
                        "this request instead"
                    )
                earlier.update(int(i) for i in e["forget_indices"])
            indices = sorted(earlier | set(indices))
        key: list[Any] = [in_sha, indices, method, settings]
        rid = request_id or canonical_sha256([*key, "from_original"] if from_original else key)[:16]
        out = Path(output_model)
        last = entries[-1] if entries else None
        if (
            last is not None
            and last.get("request_id") == rid
            and last.get("input_sha256") == in_sha
            and out.is_file()
            and file_sha256(out) == last.get("output_sha256")
        ):
            return Request(rid, indices, in_path, out, done=True)
        current = current_model(entries)
        if not from_original and current is not None and in_sha != current[1]:
            where = self.resolve(current[0])
            raise LedgerError(
                f"{in_path} is not the ledger's current model; the current one is {where} "
                f"(sha256 {current[1][:12]}...): start this request from it with --model {where}"
            )
        fields: dict[str, Any] = {
            "request_id": rid,
            "dataset": dataset,
            "method": method,
            "preset": preset,
            "settings": settings,
            "settings_sha256": canonical_sha256(settings),
            "forget_count": len(indices),
            "forget_sha256": forget_sha256(indices),
            "input_model": os.path.relpath(in_path.resolve(), self.path.resolve().parent),
            "input_sha256": in_sha,
            "output_model": os.path.relpath(out.resolve(), self.path.resolve().parent),
        }
        if from_original:
            fields["from_original"] = True
        if store_indices:
            fields["forget_indices"] = indices
        rows = split_request(checkpoint_meta(in_path).get("anchors"), indices)
        if rows.untrained:  # never trained on: released from the anchors, not unlearned
            fields["untrained"] = rows.untrained
            fields["anchors_released"] = rows.released
        return Request(rid, rows.forget, in_path, out, fields=fields, rows=rows)

    def record(self, request: Request, outcome: dict[str, Any]) -> dict[str, Any]:
        """Append ``request`` with its ``outcome`` (metrics, steps, ...) once its model is
        written; returns the stored entry.

        Raises:
            LedgerError: The request was already recorded, its model is missing, or another
                request was appended since :meth:`request` so it no longer starts where the
                rules say.
        """
        if request.done:
            raise LedgerError(f"request {request.request_id} is already in {self.path}")
        if not request.output_model.is_file():
            raise LedgerError(
                f"write the model of request {request.request_id} to {request.output_model} "
                "before recording it"
            )
        carried = checkpoint_meta(request.output_model).get("anchors")
        if request.rows is not None and carried != request.rows.anchors:
            raise LedgerError(
                f"the model of request {request.request_id} at {request.output_model} does not "
                "carry the anchors the request leaves; save it with "
                'meta["anchors"] = request.rows.anchors'
            )
        entry = {
            **request.fields,
            "time": utc_stamp(),
            "output_sha256": file_sha256(request.output_model),
            **outcome,
        }
        try:  # the entry as it will be stored (its links are added under the lock)
            typed = LedgerEntry.from_json({**entry, "prev_hash": GENESIS, "hash": GENESIS})
        except RecordError as e:
            raise LedgerError(
                f"the outcome of request {request.request_id} cannot be recorded: {e}"
            ) from None
        if (
            request.forget_indices
            and typed.forget_indices is not None
            and typed.forget_acc_after() is None
        ):
            raise LedgerError(
                f"the outcome of request {request.request_id} lacks the number verify checks: "
                'give {"metrics": {"after": {"forget_acc": ...}}}, the D_f accuracy of its '
                "model (amnesiac.evaluate(model, forget=...))"
            )
        if "versions" not in entry:
            entry["versions"] = software_versions()
        # read, check and append under one lock: of several requests that start from the same
        # model, exactly one is recorded, and the others are told which model is now current
        with file_lock(self.path):
            entries = self.entries()
            if problem := start_problem([*entries, entry], len(entries)):
                now = current_model(entries)
                where = (
                    ""
                    if now is None
                    else (
                        f"; the ledger's current model is now {self.resolve(now[0])}: run the "
                        f"request again from it (--model {self.resolve(now[0])})"
                    )
                )
                raise LedgerError(
                    f"request {request.request_id} cannot be recorded: {problem}{where}"
                )
            return _append(self.path, entries, entry)

    def verify(
        self,
        *,
        load_data: Callable[[str], Splits] | None = None,
        check_accuracy: bool = True,
    ) -> Verified:
        """Recheck everything the ledger claims; raises :class:`LedgerError` at the first lie.

        The hash chain; each entry's model file (present, same SHA-256); each request's start
        (:func:`start_problem`); and, where the indices are stored and ``check_accuracy``, that
        the model's D_f accuracy is what the entry says. ``load_data(name)`` gives a dataset by
        name (default: :func:`amnesiac.load_dataset` without downloading).
        """
        from amnesiac.api import evaluate
        from amnesiac.data import load_dataset, parse_forget
        from amnesiac.models import load_checkpoint

        if not self.path.is_file():
            raise LedgerError(f"ledger {self.path} does not exist")
        load = load_data or (lambda name: load_dataset(name, download=False))
        entries = self.entries()
        datasets: dict[str, Splits] = {}
        checked = 0
        for i, raw in enumerate(entries):
            where = f"entry {i + 1} (request {raw.get('request_id')})"
            try:
                e = LedgerEntry.from_json(raw)
            except RecordError as err:
                raise LedgerError(f"{where}: {err}") from None
            model_path = self.resolve(e.output_model)
            if not model_path.is_file():
                raise LedgerError(f"{where}: its model {model_path} is missing")
            if file_sha256(model_path) != e.output_sha256:
                raise LedgerError(f"{where}: {model_path} does not match the recorded SHA-256")
            if problem := start_problem(entries, i):
                raise LedgerError(f"{where}: {problem}")
            model = load_checkpoint(model_path).model
            if e.forget_indices is None or not check_accuracy:
                continue
            if e.dataset not in datasets:
                datasets[e.dataset] = load(e.dataset)
            d = datasets[e.dataset]
            idx = parse_forget(e.forget_indices, d.train_y)
            if not forget_hash_matches(idx.tolist(), e.forget_sha256):
                raise LedgerError(f"{where}: forget_sha256 does not match its forget_indices")
            untrained = set(e.untrained)
            idx = torch.tensor([i for i in idx.tolist() if i not in untrained], dtype=torch.int64)
            if not len(idx):  # only anchors the model never trained on: nothing to measure
                continue
            recorded = e.forget_acc_after()
            if recorded is None:
                raise LedgerError(f"{where}: it records no D_f accuracy to check")
            acc = evaluate(model, forget=(d.train_x[idx], d.train_y[idx]))["forget_acc"]
            if abs(acc - recorded) > 1e-6:
                raise LedgerError(
                    f"{where}: D_f accuracy of {model_path} is {acc:.2f}%, the ledger says "
                    f"{recorded:.2f}%"
                )
            checked += 1
        return Verified(len(entries), checked)
