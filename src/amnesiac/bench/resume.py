"""A grid's results file: its rows, appended safely, and which are current (the resume rule).

A row describes its cell while it ran with the settings the cell resolves to today; settings a
method gained or lost since are matched at the value that reproduces the old behaviour.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amnesiac
from amnesiac._io import locked
from amnesiac.bench.grid import Cell, Grid
from amnesiac.errors import ResultsFileError
from amnesiac.records import BenchRow, RecordError


def read_rows(path: Path) -> list[BenchRow]:
    """The typed rows of a results file. A torn line (a write cut short by a killed process:
    an object that never closes) is skipped, wherever a later append left it; any other line
    that is not a JSON object, or not a valid row, is an error that names it.

    Raises:
        ResultsFileError: A line that is not a row and not torn.
    """
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if line.lstrip().startswith("{") and not line.rstrip().endswith("}"):
                continue  # torn
            raise ResultsFileError(
                f"{path} line {n} is not a JSON row ({e.msg}); it was edited or damaged: "
                "remove that line (its cell runs again)"
            ) from None
        try:
            rows.append(BenchRow.from_json(row))
        except RecordError as e:
            raise ResultsFileError(
                f"{path} line {n}: {e}; remove that line (its cell runs again)"
            ) from None
    return rows


def append_row(path: Path, row: BenchRow | dict[str, Any]) -> None:
    """Append one row (validated: :class:`~amnesiac.records.BenchRow`) as a JSON line and
    fsync it, so an interruption loses at most the current cell.

    Safe from several processes at once (the ranks of ``torchrun ... bench``): the append
    holds an exclusive ``flock`` on the file (across machines, the file system must honour
    it, as NFSv4 does). A torn last line left by a killed writer is ended first, so it spoils
    no later row (:func:`read_rows` skips it).
    """
    line = (json.dumps(BenchRow.of(row).to_json(), sort_keys=True) + "\n").encode()
    with path.open("a+b") as f, locked(f.fileno()):
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


#: Settings added to a settings class after rows were recorded, each with the value that
#: reproduces the behaviour from before it existed: a row that does not record the setting ran
#: with that value. Keyed by settings class name (and inherited by its subclasses). A failed row
#: that does not record a setting is never current: the setting may be what fixes it.
ADDED_SETTINGS: dict[str, dict[str, Any]] = {
    # the rescue acts only on a run that diverged, and such a run's row failed: a row that
    # ended well ran exactly as it would with the rescue
    "StepConfig": {
        "clip_grad_norm": 0.0,
        "rescue_clip_grad_norm": 20.0,
        "heal_patience": 0,
        "heal_check_every": 10,
        "heal_min_gain": 0.0,
    },
    "L2ULConfig": {
        "forget_scale_k": 0,
        "forget_escalate_steps": 0,
        "nearest_target": False,
        "spread_targets": False,
        "anchored_spread_targets": False,
        "anchored_reg_weight": 1.0,
        "anchored_forget_scale_k": 64,
        "forget_reduction": "batch",
        "anchored_near_fraction": 0.0,
        "heal_schedule": "constant",
        "anchored_heal_schedule": "constant",
        # before it, an anchored run healed ``heal_steps``: 150 by default (those rows are
        # stale by anchored_heal_schedule anyway), 400 under the surrogate preset, whose rows
        # stay current by this value
        "anchored_heal_steps": 400,
        # before them, an anchored run trained at lr (1e-3 in every anchored cell) on its
        # anchors as given
        "anchored_lr": 1e-3,
        "anchored_augment_to": 0,
        # before it, the anchored heal always ran its anchored_heal_steps; the holdout acts
        # only with it, so any value reproduces those runs
        "anchored_heal_patience": 0,
        "anchored_heal_holdout": 0.0,
        # before it, anchors were held by proxy_loss alone
        "anchored_logit_weight": 0.0,
    },
    "RandomLabelConfig": {"crop_fraction": 0.0, "flip": False},
    "AmunConfig": {"retain_sample": 0},
}
#: Settings a class stopped accepting because they did nothing there: a row that recorded one
#: still ran as today.
REMOVED_SETTINGS: dict[str, set[str]] = {
    "RetrainConfig": {
        "max_steps", "stop", "bn_mode", "heal_steps", "shrink_steps", "clip_grad_norm",
    },
}  # fmt: skip


def cell_config(cell: Cell) -> amnesiac.UnlearnConfig:
    """The resolved settings of an unlearning or continual cell."""
    return amnesiac.make_config(cell.method, cell.preset, **{"seed": cell.seed, **cell.settings})


def cell_anchored(grid: Grid, cell: Cell) -> bool:
    """Whether ``cell`` runs with anchors: its own ``surrogate`` images, else (unless
    ``surrogate: none``) its model's reserved or attached ones, for a method that uses them."""
    if cell.kind == "speed" or cell.surrogate == "none":
        return False
    try:
        if not amnesiac.get_method(cell.method).uses("surrogate"):
            return False
    except amnesiac.AmnesiacError:  # an unknown method: the cell fails and its row says why
        return False
    if cell.surrogate or cell.model == "shipped-ready":
        return True
    if cell.model == "shipped":
        return False
    try:
        return amnesiac.checkpoint_meta(grid.path.parent / cell.model).get("anchors") is not None
    except amnesiac.AmnesiacError:  # the cell fails when it runs, and its row says why
        return True


def cell_inputs(cell: Cell, anchored: bool) -> list[str]:
    """The optional inputs a cell's method gets (``MethodInfo.inputs``: the bench always has
    D_r, and anchors where :func:`cell_anchored`)."""
    try:
        info = amnesiac.get_method(cell.method)
    except amnesiac.AmnesiacError:
        return []
    return sorted(info.inputs(retain=True, surrogate=True if anchored else None))


def row_inputs(row: BenchRow) -> list[str]:
    """The optional inputs a row's run got: as it recorded them, or, for a row from before
    they were recorded, D_r only for the methods that needed it and anchors where it had some
    (a method that needs anchors always had them)."""
    if row.inputs is not None:
        return sorted(row.inputs)
    try:
        info = amnesiac.get_method(row.method)
    except amnesiac.AmnesiacError:
        return []
    had = ["retain"] if info.needs_retain else []
    given = row.surrogate not in (None, "none") or bool(row.anchors)
    anchored = info.uses("surrogate") and (given or "surrogate" in info.reads)
    return sorted([*had, *(["surrogate"] if anchored else [])])


def cell_settings(cell: Cell, anchored: bool) -> dict[str, Any] | None:
    """The cell's resolved settings (``None`` for the speed cell, or a cell whose settings do
    not resolve: it runs and is recorded as failed). A cell that runs without anchors
    (``anchored=False``) ignores the settings that act only with them
    (``UnlearnConfig.ANCHORED_ONLY``), and a cell with anchors those that act only without
    (``UnlearnConfig.FORGET_ONLY``): its run is the same whatever their values."""
    if cell.kind == "speed":
        return None
    try:
        config = cell_config(cell)
    except amnesiac.AmnesiacError:  # runs, and its row records the error
        return None
    # what a setting the row does not record must be: the value from before it existed
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for klass in reversed(type(config).__mro__):
        defaults.update(ADDED_SETTINGS.get(klass.__name__, {}))
    # and what the settings themselves say they leave unused (l2ul's attack settings at n_adv=0)
    removed = set(config.FORGET_ONLY if anchored else config.ANCHORED_ONLY)
    removed |= set(config.unused_settings())
    for klass in type(config).__mro__:
        removed |= REMOVED_SETTINGS.get(klass.__name__, set())
    return {
        "values": json.loads(json.dumps(config.to_dict())),
        "defaults": defaults,
        "removed": sorted(removed),
    }


def ran_with(row: BenchRow, settings: dict[str, Any] | None, kind: str) -> bool:
    """Whether ``row`` ran with ``settings`` (from :func:`cell_settings`).

    Every setting the row recorded must equal today's; a setting the row does not know (added to
    a method after it ran) must be at the value that reproduces the behaviour from before it
    existed (:data:`ADDED_SETTINGS` of the settings class, else its default); a setting the class
    no longer takes (:data:`REMOVED_SETTINGS`) is ignored; a failed row must have recorded every
    setting. So changing a method's defaults or presets reruns exactly the cells it affects.
    """
    if kind == "speed":
        return True
    recorded = row.settings
    if settings is None:
        return False
    removed = set(settings["removed"])
    values = {k: v for k, v in settings["values"].items() if k not in removed}
    defaults = settings["defaults"]
    recorded = {k: v for k, v in recorded.items() if k not in removed}
    if not set(recorded) <= set(values):
        return False
    if row.status == "failed" and set(values) - set(recorded):
        return False
    return all(
        recorded[k] == v if k in recorded else v == defaults.get(k) for k, v in values.items()
    )


def current_rows(grid: Grid, results: Path) -> list[BenchRow]:
    """The latest row of each cell of ``grid`` in ``results`` that ran with the settings the
    cell resolves to today (rows of older defaults are left out)."""
    return list({r.id: r for r in matching_rows(grid, results)}.values())


def matching_rows(grid: Grid, results: Path) -> Iterator[BenchRow]:
    """The rows of ``results``, in file order, of cells of ``grid`` that ran with the settings
    the cell resolves to today."""
    current = {}
    for c in grid.cells:
        anchored = cell_anchored(grid, c)
        current[c.id] = (c.kind, c.audit, cell_settings(c, anchored), cell_inputs(c, anchored))
    for r in read_rows(results):
        if r.id in current:
            kind, audit, settings, inputs = current[r.id]
            if kind == "unlearn" and r.ok and row_inputs(r) != inputs:
                continue  # the method gets other data today (amun: D_r where it is at hand)
            # an audited cell also needs the audit (a failed row has none and stays a row)
            if ran_with(r, settings, kind) and (not audit or r.audited or not r.ok):
                yield r
