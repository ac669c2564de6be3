"""Benchmark grids: a YAML file expanded into cells (method x k x seed), each with a stable id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

import amnesiac
from amnesiac.errors import InvalidSettingsError


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    label: str
    method: str
    preset: str | None
    settings: dict[str, Any]
    k: int
    seed: int
    dataset: str
    model: str
    kind: str = "unlearn"
    section: str = "main"
    rounds: int = 0  # continual cells: requests in sequence, k instances each
    audit: bool = False  # also measure LiRA, relearn time and CKA (not part of the id)
    # unlabeled anchor images (amnesiac.load_surrogate's spec); "none": forget-only even on a
    # forget-ready model, whose own anchors a cell without the key uses
    surrogate: str | None = None
    from_original: bool = False  # continual: each round re-solves every request so far

    @property
    def id(self) -> str:
        fields: list[Any] = [
            self.kind,
            self.label,
            self.method,
            self.preset,
            self.settings,
            self.k,
            self.seed,
            self.dataset,
            self.model,
            self.section,
        ]
        if self.kind == "continual":
            fields.append(self.rounds)
        if self.surrogate is not None:
            fields.append({"surrogate": self.surrogate})
        if self.from_original:
            fields.append({"from_original": True})
        key = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Compare:
    """The speed comparison of the report (the grid's optional ``compare`` key).

    The wall time of the ``method`` row against the ``baseline`` row at forget-set size ``k`` and
    seed ``seed`` (labels of main-section entries); each of ``variants`` (a label, and how the
    sentence names it as a variant of ``method``) is compared with ``method`` too. The report
    leaves out the comparison while the rows it needs are missing (a variant: just that one).
    """

    baseline: str = "retrain"
    method: str = "l2ul"
    k: int = 32
    seed: int = 0
    variants: dict[str, str] = field(default_factory=lambda: {"l2ul (paper)": "paper preset"})


@dataclass(frozen=True)
class Grid:
    """A parsed grid file.

    Attributes:
        name: Grid name (shown in RESULTS.md).
        dataset: Dataset name.
        model: ``shipped`` or a checkpoint path.
        retain_eval_size: D_r is measured on a seeded subset of this size (0: all of D_r).
        cells: The expanded runs, in order.
        results: Where rows go (relative to the grid file).
        report: Where RESULTS.md goes (relative to the grid file).
        workers: Cells run at once, each in its own process with an equal share of the torch
            threads (the speed cell always runs alone first).
        shadows: Shadow models of the LiRA audit (0 when no cell is audited).
        settings: Settings given to every cell (under each entry's own), e.g.
            ``{"precision": "bf16"}``; its ``precision`` also trains the LiRA shadow models.
        test_rows: ``(start, stop)``: D_test is these rows of the test split for every cell
            (``None``: all of it), so that rows anchored on other test images (an entry's
            ``surrogate``) are measured on the same images as the rest.
        compare: The report's speed comparison (``None``: none), see :class:`Compare`.
        include: Other grid files (relative to this one) whose results tables and continual
            tables the report repeats, each from its own results file, so one page shows them
            (e.g. the shipped grid's RESULTS.md with the surrogate and continual grids).
    """

    name: str
    dataset: str
    model: str
    retain_eval_size: int
    cells: list[Cell] = field(default_factory=list)
    results: str = "results.jsonl"
    report: str = "RESULTS.md"
    path: Path = Path(".")
    workers: int = 1
    shadows: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    test_rows: tuple[int, int] | None = None
    compare: Compare | None = field(default_factory=Compare)
    include: tuple[str, ...] = ()


def load_grid(path: str | Path, *, full_retain: bool = False) -> Grid:
    """Read and expand a grid YAML file; every problem is reported at once."""
    path = Path(path)
    spec = _read_spec(path)
    problems: list[str] = []
    where = (str(spec["dataset"]), str(spec.get("model", "shipped")))
    common = spec.get("settings") or {}
    if not isinstance(common, dict):
        problems.append(f"settings must be a mapping of setting names to values, got {common!r}")
        common = {}
    audit_ks, audit_seeds, shadows = _audit_spec(spec, problems)
    cells: list[Cell] = []
    if spec.get("speed", True):
        # measured at the grid's precision (part of the id, so a change remeasures it)
        speed_settings = {"precision": common["precision"]} if "precision" in common else {}
        cells.append(Cell("speed", "speed", None, speed_settings, 0, 0, *where, kind="speed"))
    for i, entry in enumerate(spec["methods"]):
        cells += _method_cells(i, entry, spec, common, where, (audit_ks, audit_seeds), problems)
    for i, entry in enumerate(spec.get("continual", []) or []):
        cells += _continual_cells(i, entry, common, where, problems)
    test_rows = _test_rows(spec, problems)
    problems += _surrogate_problems(cells, where[0], test_rows)
    workers = spec.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        problems.append(f"workers must be an integer >= 1, got {workers!r}")
    compare = _compare(spec, cells, problems)
    include = spec.get("include") or []
    if not isinstance(include, list) or not all(isinstance(p, str) for p in include):
        problems.append(f"include must be a list of grid files, got {include!r}")
        include = []
    problems += [
        f"include: {p} is not a file (paths are relative to {path.parent})"
        for p in include
        if not (path.parent / p).is_file()
    ]
    if problems:
        raise InvalidSettingsError(f"grid file {path}: " + "; ".join(problems))
    size = 0 if full_retain else int(spec.get("retain_eval_size", 10000))
    return Grid(
        name=str(spec.get("name", path.stem)),
        dataset=where[0],
        model=where[1],
        retain_eval_size=size,
        cells=cells,
        results=str(spec.get("results", "results.jsonl")),
        report=str(spec.get("report", "RESULTS.md")),
        path=path,
        workers=workers,
        shadows=shadows,
        settings=dict(common),
        test_rows=(test_rows[0], test_rows[1]) if test_rows is not None else None,
        compare=compare,
        include=tuple(include),
    )


def _read_spec(path: Path) -> dict[str, Any]:
    """The grid file's mapping, with the keys every grid needs."""
    if not path.is_file():
        raise InvalidSettingsError(f"grid file {path} does not exist")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InvalidSettingsError(f"grid file {path} is not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise InvalidSettingsError(f"grid file {path} must hold a mapping")
    problems = [
        f"missing key {k!r}" for k in ("dataset", "ks", "seeds", "methods") if k not in spec
    ]
    if problems:
        raise InvalidSettingsError(f"grid file {path}: " + "; ".join(problems))
    return spec


def _audit_spec(spec: dict[str, Any], problems: list[str]) -> tuple[set[int], set[int], int]:
    """The audited ks and seeds, and the number of LiRA shadow models (0: none)."""
    audit = spec.get("audit") or {}
    if not isinstance(audit, dict) or set(audit) - {"ks", "seeds", "shadows"}:
        problems.append("audit must be a mapping with keys among 'ks', 'seeds' and 'shadows'")
        audit = {}
    audit_ks = {int(k) for k in audit.get("ks", []) or []}
    audit_seeds = {int(s) for s in audit.get("seeds", []) or []}
    shadows = audit.get("shadows", 8) if audit_ks and audit_seeds else 0
    if not isinstance(shadows, int) or shadows == 1 or shadows < 0:
        problems.append(f"audit.shadows must be 0 (no LiRA) or at least 2, got {shadows!r}")
    return audit_ks, audit_seeds, shadows


def _method_cells(
    i: int,
    entry: Any,
    spec: dict[str, Any],
    common: dict[str, Any],
    where: tuple[str, str],
    audited: tuple[set[int], set[int]],
    problems: list[str],
) -> list[Cell]:
    """The cells of ``methods[i]``: one per k and seed (``where``: dataset and model)."""
    if isinstance(entry, str):
        entry = {"method": entry}
    if not isinstance(entry, dict) or "method" not in entry:
        problems.append(f"methods[{i}] needs a 'method' key")
        return []
    unknown = set(entry) - {
        "method", "label", "preset", "settings", "ks", "seeds", "section", "surrogate"
    }  # fmt: skip
    if unknown:
        problems.append(f"methods[{i}] has unknown keys {sorted(unknown)}")
    name = str(entry["method"])
    needs = {m.name for m in amnesiac.list_methods() if "surrogate" in m.reads}
    if name in needs and "surrogate" not in entry:
        problems.append(
            f"methods[{i}] ({name}) reads unlabeled in-domain images; give it a "
            "'surrogate' key (e.g. 'fashion-mnist:test:0:5000' with test_rows)"
        )
    label = str(entry.get("label", entry["method"]))
    section = str(entry.get("section", "main"))
    ks: list[Any] = list(entry.get("ks", spec["ks"]) or [])
    seeds: list[Any] = list(entry.get("seeds", spec["seeds"]) or [])
    return [
        Cell(
            label,
            str(entry["method"]),
            entry.get("preset"),
            {**common, **(entry.get("settings", {}) or {})},
            int(k),
            int(seed),
            *where,
            section=section,
            audit=section == "main" and int(k) in audited[0] and int(seed) in audited[1],
            surrogate=entry.get("surrogate"),
        )
        for k in ks
        for seed in seeds
    ]


def _continual_cells(
    i: int, entry: Any, common: dict[str, Any], where: tuple[str, str], problems: list[str]
) -> list[Cell]:
    """The cells of ``continual[i]``: one per seed (``where``: dataset and model)."""
    if not isinstance(entry, dict) or not {"method", "rounds", "per_round"} <= set(entry):
        problems.append(f"continual[{i}] needs 'method', 'rounds' and 'per_round' keys")
        return []
    unknown = set(entry) - {"method", "label", "preset", "settings", "rounds", "per_round",
                            "seeds", "from_original"}  # fmt: skip
    if unknown:
        problems.append(f"continual[{i}] has unknown keys {sorted(unknown)}")
    return [
        Cell(
            str(entry.get("label", entry["method"])),
            str(entry["method"]),
            entry.get("preset"),
            {**common, **(entry.get("settings", {}) or {})},
            int(entry["per_round"]),
            int(seed),
            *where,
            kind="continual",
            section="continual",
            rounds=int(entry["rounds"]),
            from_original=bool(entry.get("from_original", True)),
        )
        for seed in list(entry.get("seeds", [0]) or [])
    ]


def _test_rows(spec: dict[str, Any], problems: list[str]) -> list[int] | None:
    test_rows = spec.get("test_rows")
    if test_rows is None:
        return None
    if not (
        isinstance(test_rows, list)
        and len(test_rows) == 2
        and all(isinstance(v, int) for v in test_rows)
        and 0 <= test_rows[0] < test_rows[1]
    ):
        problems.append(
            f"test_rows must be [START, STOP] with 0 <= START < STOP, got {test_rows!r}"
        )
        return None
    return test_rows


def _compare(spec: dict[str, Any], cells: list[Cell], problems: list[str]) -> Compare | None:
    """The grid's ``compare`` key (absent or empty: :class:`Compare`'s defaults; ``false``: no
    comparison). Given, every label it names (defaults included) must have a main-section cell
    at its k and seed."""
    raw = spec.get("compare")
    if raw is None:
        return Compare()
    if raw is False:
        return None
    keys = [f.name for f in fields(Compare)]
    if not isinstance(raw, dict) or set(raw) - set(keys):
        problems.append(
            "compare must be false or a mapping with keys among "
            + ", ".join(repr(k) for k in keys[:-1])
            + f" and {keys[-1]!r}, got {raw!r}"
        )
        return None
    c = Compare(**raw)
    checks = {
        "baseline": ("a label", isinstance(c.baseline, str)),
        "method": ("a label", isinstance(c.method, str)),
        "k": ("an integer >= 1", _is_int(c.k) and c.k >= 1),
        "seed": ("an integer >= 0", _is_int(c.seed) and c.seed >= 0),
        "variants": (
            "a mapping of labels to the names the report gives them",
            isinstance(c.variants, dict)
            and all(isinstance(v, str) for v in (*c.variants, *c.variants.values())),
        ),
    }
    bad = [
        f"compare.{key} must be {what}, got {getattr(c, key)!r}"
        for key, (what, ok) in checks.items()
        if not ok
    ]
    if bad:
        problems += bad
        return None
    main = {(x.label, x.k, x.seed) for x in cells if x.kind == "unlearn" and x.section == "main"}
    problems += [
        f"compare: no entry of methods labelled {label!r} runs k={c.k}, seed {c.seed} in the "
        "main section"
        for label in (c.baseline, c.method, *c.variants)
        if (label, c.k, c.seed) not in main
    ]
    return c


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _surrogate_problems(cells: list[Cell], dataset: str, test_rows: list[int] | None) -> list[str]:
    """A surrogate taken from the grid's own test split must not overlap D_test."""
    from amnesiac.data import surrogate_test_rows

    out = []
    for spec in sorted({c.surrogate for c in cells if c.surrogate not in (None, "none")}):
        try:
            # the row count is not known here: an open range is checked against a large bound
            rows = surrogate_test_rows(spec, dataset, 1 << 62)
        except InvalidSettingsError as e:
            out.append(f"surrogate {spec!r}: {e}")
            continue
        if rows is None:
            continue
        if test_rows is None:
            out.append(
                f"surrogate {spec!r} takes test images of {dataset}; set test_rows to the other "
                "rows, so D_test holds none of them"
            )
        elif rows[0] < test_rows[1] and test_rows[0] < rows[1]:
            out.append(f"surrogate {spec!r} overlaps test_rows {test_rows}")
    return out
