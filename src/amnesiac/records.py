"""Typed records: the unlearn report, the deletion ledger's entry and the benchmark row.

Each is a frozen dataclass with a schema version, ``to_json()`` (the dict written to disk) and
``from_json(d)`` (validation on read: a missing field or a field of the wrong type is a
:class:`RecordError` naming it). Files written before the schema existed still load: their
fields are the same, they carry no ``schema`` key, and a record read from a file writes back
exactly the keys it was read with (a ledger entry's hash covers them). Keys a record does not
know are kept in ``extra``, so nothing is dropped on the way through.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from amnesiac.errors import AmnesiacError

__all__ = ["BenchRow", "LedgerEntry", "Record", "RecordError", "UnlearnReport"]

R = TypeVar("R", bound="Record")


class RecordError(AmnesiacError, ValueError):
    """A report, ledger entry or benchmark row that lacks a field or holds one of the wrong
    type (the file was edited, damaged, or written by something else)."""


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` (decoded JSON) fits the type ``hint`` (JSON-shaped hints only)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        _, item = typing.get_args(hint) or (str, Any)
        return isinstance(value, dict) and all(_type_ok(v, item) for v in value.values())
    return isinstance(value, hint)


@dataclass(frozen=True, kw_only=True)
class Record:
    """Shared mechanics of the typed records (see the module docstring).

    Attributes:
        schema: The schema version the record was written with (1 for files older than it).
        extra: Keys the record type does not know, kept as read.
    """

    SCHEMA: ClassVar[int] = 1
    KIND: ClassVar[str] = "record"
    #: Whether a new record leaves out the fields that are ``None``.
    OMIT_NONE: ClassVar[bool] = False

    schema: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    _keys: frozenset[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _fields(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in _SHARED}

    @classmethod
    def of(cls: type[R], value: R | dict[str, Any]) -> R:
        """``value`` itself when it is already a record, else :meth:`from_json` of it."""
        return value if isinstance(value, cls) else cls.from_json(value)

    @classmethod
    def from_json(cls: type[R], d: Any) -> R:
        """The record of the decoded JSON object ``d``.

        Raises:
            RecordError: ``d`` is not an object, lacks a required field, holds a field of the
                wrong type, or has a newer schema than this version of amnesiac reads.
        """
        if not isinstance(d, dict):
            raise RecordError(f"a {cls.KIND} must be a JSON object, got {type(d).__name__}")
        schema = d.get("schema", 1)
        if not isinstance(schema, int) or isinstance(schema, bool) or schema > cls.SCHEMA:
            raise RecordError(
                f"this {cls.KIND} has schema {schema!r}; this amnesiac reads up to "
                f"{cls.SCHEMA}: upgrade amnesiac to read it"
            )
        kwargs: dict[str, Any] = {}
        for name, hint in cls._fields().items():
            f = cls.__dataclass_fields__[name]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if name not in d:
                if required:
                    raise RecordError(f"the {cls.KIND} lacks its {name!r} field")
                continue
            if not _type_ok(d[name], hint):
                raise RecordError(
                    f"the {cls.KIND}'s {name!r} field is {d[name]!r:.60}, not of type {hint}"
                )
            kwargs[name] = d[name]
        known = set(kwargs) | {"schema"}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(schema=schema, extra=extra, _keys=frozenset(d), **kwargs)

    def to_json(self) -> dict[str, Any]:
        """The dict to write: a record read from a file gives back exactly its keys; a new one
        every field (a ledger entry leaves out the optional ones it does not have) and its
        schema."""
        out: dict[str, Any] = {}
        for name in self._fields():
            value = getattr(self, name)
            if self._keys is not None:
                if name in self._keys:
                    out[name] = value
            elif value is not None or not self.OMIT_NONE:
                out[name] = value
        if self._keys is None or "schema" in self._keys:
            out["schema"] = self.schema if self._keys is not None else self.SCHEMA
        return {**out, **self.extra}

    def replace(self: R, **changes: Any) -> R:
        """A copy with ``changes``; it is a new record (written with every field it holds)."""
        return dataclasses.replace(self, _keys=None, **changes)


_SHARED = {"schema", "extra", "_keys"}


@dataclass(frozen=True, kw_only=True)
class UnlearnReport(Record):
    """What ``amnesiac unlearn --report`` writes, and ``amnesiac report`` and the request page
    read: the run, the model it started from, D_f, the accuracies before and after, the time.
    """

    KIND: ClassVar[str] = "unlearn report"

    method: str
    dataset: str
    model: str
    forget_indices: list[int]
    forget_sha256: str
    before: dict[str, float]
    after: dict[str, float]
    model_sha256: str | None = None
    steps: int | None = None
    forgotten: bool = False
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    forget_spec: str | None = None
    retain_eval_size: int | None = None
    surrogate: str | None = None
    anchors: str | None = None
    released: list[int] = field(default_factory=list)
    test_size: int | None = None
    stopped_by: str | None = None
    update_fraction: float = 1.0
    rescued_from: Any = None
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    out: str | None = None
    out_sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class LedgerEntry(Record):
    """One deletion request in the ledger (see :mod:`amnesiac.ledger`). ``metrics`` holds the
    accuracies before and after; where it has them, :meth:`forget_acc_after` is what ``verify``
    rechecks."""

    KIND: ClassVar[str] = "ledger entry"
    OMIT_NONE: ClassVar[bool] = True  # "forget_indices" absent: only their hash was stored

    request_id: str
    dataset: str
    method: str
    settings: dict[str, Any]
    forget_sha256: str
    input_model: str
    input_sha256: str
    output_model: str
    output_sha256: str
    prev_hash: str
    hash: str
    preset: str | None = None
    settings_sha256: str | None = None
    forget_count: int | None = None
    forget_indices: list[int] | None = None
    from_original: bool = False
    untrained: list[int] = field(default_factory=list)
    anchors_released: list[int] = field(default_factory=list)
    time: str | None = None
    metrics: dict[str, dict[str, float]] | None = None
    forgotten: bool | None = None
    steps: int | None = None
    versions: dict[str, Any] = field(default_factory=dict)

    def forget_acc_after(self) -> float | None:
        """The D_f accuracy the entry claims for its model, or ``None`` where it has none."""
        value = (self.metrics or {}).get("after", {}).get("forget_acc")
        return None if value is None else float(value)


@dataclass(frozen=True, kw_only=True)
class BenchRow(Record):
    """One cell's row of a benchmark results file. The measurements (``before_*``,
    ``after_*``, the audit's, the speed probes') are kept flat beside these fields, as the
    files hold them, in ``extra``; :meth:`value` reads them."""

    KIND: ClassVar[str] = "benchmark row"

    id: str
    kind: str
    method: str
    k: int
    seed: int
    status: str
    label: str
    preset: str | None = None
    section: str | None = None
    dataset: str | None = None
    model: str | None = None
    time: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    settings_hash: str | None = None
    retain_eval_size: int | None = None
    surrogate: str | None = None
    anchors: str | None = None
    test_rows: list[int] | None = None
    forget_sha256: str | None = None
    steps: int | None = None
    stopped_by: str | None = None
    forgotten: bool | None = None
    update_fraction: float | None = None
    seconds: dict[str, float] | float | None = None
    images: dict[str, int] | None = None
    inputs: list[str] | None = None
    error: str | None = None
    audited: bool = False
    rounds: list[dict[str, Any]] | None = None
    from_original: bool = False
    workers: int = 1
    ranks: int = 1
    threads: int | None = None
    grid_started: str | None = None
    finished: str | None = None

    def value(self, name: str, default: Any = None) -> Any:
        """A measurement of the row (``after_test_acc``, ``cka``, ...), ``default`` if absent."""
        return self.extra.get(name, default)

    @property
    def ok(self) -> bool:
        """Whether the cell ran to the end (``status`` ``ok``)."""
        return self.status == "ok"

    @property
    def main(self) -> bool:
        """Whether the row is of the grid's main section (not an ablation)."""
        return (self.section or "main") == "main"

    @property
    def wall(self) -> float:
        """The row's wall time in seconds."""
        s = self.seconds
        if isinstance(s, dict):
            return float(s.get("wall", s.get("total", 0.0)))
        return float(s or 0.0)

    def drop(self, split: str = "test") -> float:
        """The accuracy on ``split`` (``test``, ``retain``) the run lost, in points."""
        return float(self.extra[f"before_{split}_acc"]) - float(self.extra[f"after_{split}_acc"])
