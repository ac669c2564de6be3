"""Run a grid through the public API, one flat JSON row per cell, resumable."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import amnesiac
from amnesiac import distributed
from amnesiac._versions import STAMP_FORMAT
from amnesiac._versions import utc_stamp as utc_now
from amnesiac.bench.grid import Cell, Grid
from amnesiac.bench.resume import (
    ADDED_SETTINGS,
    REMOVED_SETTINGS,
    append_row,
    cell_anchored,
    cell_config,
    cell_settings,
    current_rows,
    matching_rows,
    ran_with,
    read_rows,
)
from amnesiac.bench.speed import ImageCounter, cpu_name, environment, measure_speed
from amnesiac.continual import run_continual
from amnesiac.errors import InvalidSettingsError
from amnesiac.records import BenchRow

# the resume rule and the rows file live in amnesiac.bench.resume; their names stay importable
# from here
__all__ = [
    "ADDED_SETTINGS",
    "REMOVED_SETTINGS",
    "STAMP_FORMAT",
    "append_row",
    "cell_config",
    "cell_settings",
    "cpu_name",
    "current_rows",
    "ran_with",
    "read_rows",
    "run_cell",
    "run_grid",
    "utc_now",
]


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


class _Context:
    """Data and models shared by the cells of one grid run."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.data = amnesiac.load_dataset(grid.dataset)
        if grid.model in ("shipped", "shipped-ready"):
            ready = grid.model == "shipped-ready"
            checkpoint = amnesiac.load_pretrained(grid.dataset, forget_ready=ready)
        else:
            checkpoint = amnesiac.load_checkpoint(grid.path.parent / grid.model)
        self.model, self.meta = checkpoint.model, checkpoint.meta
        #: the model's own anchors (a forget-ready model), for cells that give none
        self.anchors = amnesiac.model_anchors(self.meta, train_x=self.data.train_x)
        self.trained = amnesiac.trained_rows(len(self.data.train_y), self.meta.get("anchors"))
        self._before: dict[tuple[int, int], dict[str, float]] = {}
        self._shadows: amnesiac.Shadows | None = None
        self._surrogates: dict[str, torch.Tensor] = {}
        start, stop = grid.test_rows or (0, len(self.data.test_y))
        if stop > len(self.data.test_y):
            raise InvalidSettingsError(
                f"test_rows {grid.test_rows} is outside the {len(self.data.test_y)} test images "
                f"of {grid.dataset}"
            )
        #: D_test of every cell: the grid's test_rows of the test split
        self.test = (self.data.test_x[start:stop], self.data.test_y[start:stop])

    def surrogate(self, spec: str) -> torch.Tensor:
        """The surrogate images of ``spec``, loaded once per process."""
        if spec not in self._surrogates:
            self._surrogates[spec] = amnesiac.load_surrogate(spec)
        return self._surrogates[spec]

    def cell_anchors(self, cell: Cell) -> tuple[torch.Tensor | None, str | None]:
        """The anchor images of ``cell`` and what they are, where :func:`cell_anchored` says it
        has some: its ``surrogate`` spec's images, else its model's own anchors."""
        if not cell_anchored(self.grid, cell):
            return None, None
        if cell.surrogate:
            images = self.surrogate(cell.surrogate)
            return images, f"{len(images):,} images from {cell.surrogate}"
        if self.anchors is None:
            raise InvalidSettingsError(
                f"the grid's model {self.grid.model} carries no anchors; give the cell a "
                "surrogate, or make the model forget-ready (amnesiac attach-anchors)"
            )
        return self.anchors.images, self.anchors.description

    def shadows(self, progress: bool = False) -> amnesiac.Shadows:
        """The grid's LiRA shadow models, trained with the model's recipe (cached on disk)."""
        recipe = self.meta.get("recipe")
        if recipe is None:
            raise InvalidSettingsError(
                f"the grid's model {self.grid.model} has no training recipe in its metadata, so "
                "LiRA shadow models cannot be trained like it; set audit.shadows to 0"
            )
        return amnesiac.train_shadows(
            self.data,
            str(self.meta["arch"]),
            amnesiac.TrainRecipe(
                **{**recipe, "precision": self.grid.settings.get("precision", "fp32")}
            ),
            n=self.grid.shadows,
            progress=progress,
        )

    def audit(
        self, model: torch.nn.Module, forget: torch.Tensor, f: Any, r_ev: Any
    ) -> dict[str, Any]:
        """The row keys of :func:`amnesiac.audit` of ``model`` against the original: LiRA of D_f
        against D_test (``before_``/``after_lira_*``, with the grid's shadow models, loaded once
        per process), relearn steps back to the original's D_f accuracy, and CKA."""
        if self.grid.shadows and self._shadows is None:
            self._shadows = self.shadows()
        t0 = time.perf_counter()
        report = amnesiac.audit(
            model,
            self.model,
            forget=f,
            retain=r_ev,
            test=self.test,
            shadows=self._shadows,
            forget_indices=forget,
            relearn_max_steps=200,
        )
        out: dict[str, Any] = {}
        if "lira" in report:
            out["lira_shadow_models"] = report["lira"]["shadow_models"]
            for when, name in (("before", "original"), ("after", "unlearned")):
                for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "mean_score"):
                    out[f"{when}_lira_{key}"] = report["lira"][name][key]
        out["relearn_steps"] = report["relearn_steps"]["unlearned"]
        if "unlearned" in report.get("cka", {}):
            out["cka"] = report["cka"]["unlearned"]
        out["audit_seconds"] = time.perf_counter() - t0
        return out

    def sets(self, k: int, seed: int) -> tuple[torch.Tensor, Any, Any, Any, int]:
        d = self.data
        n = len(d.train_y)
        forget = amnesiac.random_rows(d.train_y, k, seed, self.trained)
        left_out = amnesiac.not_retained(n, forget, self.trained)
        retain = amnesiac.retain_indices(n, left_out)
        ev = amnesiac.retain_eval_indices(n, left_out, self.grid.retain_eval_size, seed)
        return (
            forget,
            (d.train_x[forget], d.train_y[forget]),
            (d.train_x[retain], d.train_y[retain]),
            (d.train_x[ev], d.train_y[ev]),
            len(ev),
        )

    def before(self, k: int, seed: int, f: Any, r_ev: Any) -> dict[str, float]:
        if (k, seed) not in self._before:
            self._before[(k, seed)] = amnesiac.evaluate(
                self.model,
                forget=f,
                retain=r_ev,
                test=self.test,
                membership=True,
            )
        return self._before[(k, seed)]


def run_cell(ctx: _Context, cell: Cell) -> dict[str, Any]:
    """Run one cell and return its row (never raises for a failed method)."""
    row: dict[str, Any] = {
        "id": cell.id,
        "kind": cell.kind,
        "label": cell.label,
        "method": cell.method,
        "preset": cell.preset,
        "k": cell.k,
        "section": cell.section,
        "seed": cell.seed,
        "dataset": cell.dataset,
        "model": cell.model,
        "retain_eval_size": ctx.grid.retain_eval_size,
        "surrogate": cell.surrogate,
        "test_rows": list(ctx.grid.test_rows) if ctx.grid.test_rows else None,
        "time": utc_now(),
        **environment(),
    }
    run = {"speed": _run_speed, "continual": _run_continual}.get(cell.kind, _run_unlearn)
    try:
        with distributed.local():  # a cell is one rank's job (retrain: no DDP inside)
            run(ctx, cell, row)
    except Exception as e:  # a failed cell is a row, and the grid goes on
        row.update(
            status="failed",
            error=f"{type(e).__name__}: {e}",
            traceback=traceback.format_exc(limit=3),
        )
    return row


def _run_speed(ctx: _Context, cell: Cell, row: dict[str, Any]) -> None:
    """Fill ``row`` with the speed probes (:func:`measure_speed`) at the grid's precision."""
    precision = str(cell.settings.get("precision", "fp32"))
    row.update(status="ok", **measure_speed(ctx.model, ctx.data.train_x, precision=precision))


def _run_continual(ctx: _Context, cell: Cell, row: dict[str, Any]) -> None:
    """Fill ``row`` with the rounds of a continual cell (:func:`run_continual`)."""
    config = cell_config(cell)
    t0 = time.perf_counter()
    rounds = run_continual(
        ctx.model,
        ctx.data,
        rounds=cell.rounds,
        per_round=cell.k,
        method=cell.method,
        config=config,
        seed=cell.seed,
        retain_eval_size=ctx.grid.retain_eval_size,
        from_original=cell.from_original,
        test=ctx.test,
        surrogate=ctx.cell_anchors(cell)[0],
        trained=ctx.trained,
    )
    row.update(
        status="ok",
        settings=config.to_dict(),
        settings_hash=sha256_json(config.to_dict()),
        from_original=cell.from_original,
        rounds=rounds,
        before_test_acc=amnesiac.evaluate(ctx.model, test=ctx.test)["test_acc"],
        seconds={"wall": time.perf_counter() - t0},
    )


def _run_unlearn(ctx: _Context, cell: Cell, row: dict[str, Any]) -> None:
    """Fill ``row`` with one unlearning run, measured before and after (and audited if the cell
    is); the settings are recorded first, so that a failed run's row has them too."""
    forget, f, retain, r_ev, n_ev = ctx.sets(cell.k, cell.seed)
    before = ctx.before(cell.k, cell.seed, f, r_ev)
    info = amnesiac.get_method(cell.method)
    config = cell_config(cell)
    anchors, described = ctx.cell_anchors(cell)
    row.update(
        anchors=described,
        settings=config.to_dict(),
        settings_hash=sha256_json(config.to_dict()),
        forget_sha256=amnesiac.forget_sha256(forget),
        retain_eval_size=n_ev,
    )
    t0 = time.perf_counter()
    inputs = info.inputs(retain=retain, surrogate=anchors)
    row["inputs"] = sorted(inputs)
    with ImageCounter(type(ctx.model)) as seen:
        result = amnesiac.unlearn(
            ctx.model,
            forget=f,
            method=cell.method,
            **inputs,
            **config.to_dict(),
        )
    wall = time.perf_counter() - t0
    after = amnesiac.evaluate(result.model, forget=f, retain=r_ev, test=ctx.test, membership=True)
    row.update(
        status="ok",
        steps=result.steps,
        stopped_by=result.stopped_by,
        forgotten=result.forgotten,
        update_fraction=result.update_fraction,
        rescued_from=result.rescued_from,
        seconds={**result.seconds, "wall": wall},
        images={"trained": seen.trained, "inferred": seen.inferred},
        **{f"before_{k}": v for k, v in before.items()},
        **{f"after_{k}": v for k, v in after.items()},
    )
    if cell.audit:
        row.update(audited=True, **ctx.audit(result.model, forget, f, r_ev))


def run_grid(
    grid: Grid,
    *,
    results: Path | None = None,
    progress: bool = True,
    on_row: Callable[[BenchRow], None] | None = None,
    workers: int | None = None,
) -> list[BenchRow]:
    """Run every cell of ``grid`` not already in ``results``; return all rows of the grid.

    ``workers`` (default: the grid's) cells run at once, each in a process of its own with
    ``threads // workers`` torch threads; rows are appended as cells finish. The speed cell
    measures throughput, so it always runs first and alone. Every row records when this call
    started (``grid_started``), so the report can tell the wall time of a grid run in one
    sitting, shadow models included.

    In several processes (``torchrun ... -m amnesiac bench GRID``, after
    :func:`amnesiac.distributed.init`), every rank reads the same pending cells, the shadow
    models are shared out (:func:`amnesiac.train_shadows`), rank 0 runs the speed cell while
    the others wait, and rank ``r`` of ``w`` runs every ``w``-th of the other pending cells,
    longest first (``workers`` at a time, as above). All append to the one ``results`` file
    (:func:`append_row` locks it), and every row records ``ranks`` (``w``) and its ``rank``.
    Each rank returns once every rank is done. A rerun, with any number of ranks, runs what
    is still missing, as in one process.
    """
    ranks = distributed.processes()
    rank = distributed.rank() if ranks > 1 else 0
    # one start for every rank (the earliest), so the report sees one run
    started = utc_now(distributed.all_reduce_min(int(time.time())))
    results = results or grid.path.parent / grid.results
    workers = grid.workers if workers is None else workers
    if workers < 1:
        raise InvalidSettingsError(f"workers must be >= 1, got {workers}")
    # a row counts as done only if it ran with the settings the cell resolves to today
    done = {r.id for r in matching_rows(grid, results) if r.ok}
    todo = [c for c in grid.cells if c.id not in done]
    distributed.barrier()  # every rank has read the same pending cells before any row is added
    if grid.shadows and any(c.audit for c in todo):
        # trained once here (shared out over the ranks) and loaded by the cells; without a
        # recipe each audited cell records the error in its row
        with contextlib.suppress(ValueError):
            _Context(grid).shadows(progress=progress)
    mine = todo
    if ranks > 1:
        speed = [c for c in todo if c.kind == "speed"]
        if speed and rank == 0:  # alone, as in one process
            for row in _rows(grid, speed, 1):
                _record(row, results, on_row, workers=1, started=started, ranks=ranks, rank=0)
        distributed.barrier()
        mine = distributed.share(_longest_first([c for c in todo if c.kind != "speed"]))
    if mine:
        bar = tqdm(total=len(mine), disable=not progress, desc=f"bench {grid.name}", unit="cell")
        try:
            for row in _rows(grid, mine, workers):
                record = _record(row, results, on_row, workers, started, ranks, rank)
                bar.set_postfix_str(f"{record.label} k={record.k} seed={record.seed}")
                bar.update()
        finally:
            bar.close()
    distributed.barrier()  # the rows of every rank are in
    return current_rows(grid, results)


def _record(
    row: dict[str, Any],
    results: Path,
    on_row: Callable[[BenchRow], None] | None,
    workers: int,
    started: str,
    ranks: int,
    rank: int,
) -> BenchRow:
    """Stamp a finished cell's row with how and when it ran, and append it."""
    record = BenchRow.from_json(
        {**row, "workers": workers, "grid_started": started, "finished": utc_now(),
         "ranks": ranks, "rank": rank}
    )  # fmt: skip
    append_row(results, record)
    if on_row is not None:
        on_row(record)
    return record


def _longest_first(cells: list[Cell]) -> list[Cell]:
    """Cells longest first, so that no long cell ends the grid with the other workers idle:
    methods that train from scratch, then the most forget instances (steps and batches grow
    with k); ties keep the grid's order."""
    return sorted(cells, key=lambda c: (_is_iterative(c.method), -c.k * max(c.rounds, 1)))


def _rows(grid: Grid, todo: list[Cell], workers: int) -> Iterator[dict[str, Any]]:
    """Run ``todo`` and yield each cell's row as it finishes."""
    speed = [c for c in todo if c.kind == "speed"]
    rest = [c for c in todo if c.kind != "speed"]
    if workers == 1 or len(rest) < 2:
        ctx = _Context(grid)
        for cell in todo:
            yield run_cell(ctx, cell)
        return
    if speed:
        ctx = _Context(grid)
        for cell in speed:
            yield run_cell(ctx, cell)
        del ctx
    rest = _longest_first(rest)
    threads = max(1, torch.get_num_threads() // workers)
    # spawn, not fork: a forked child of a process that already ran OpenMP threads can hang
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=spawn, initializer=_init_worker, initargs=(grid, threads)
    ) as pool:
        futures = [pool.submit(_run_in_worker, cell) for cell in rest]
        for future in as_completed(futures):
            yield future.result()


def _is_iterative(method: str) -> bool:
    try:
        return amnesiac.get_method(method).cls.iterative
    except amnesiac.UnknownNameError:
        return True  # its cell records the error


_WORKER_CONTEXT: _Context | None = None


def _init_worker(grid: Grid, threads: int) -> None:
    global _WORKER_CONTEXT
    torch.set_num_threads(threads)
    _WORKER_CONTEXT = _Context(grid)


def _run_in_worker(cell: Cell) -> dict[str, Any]:
    assert _WORKER_CONTEXT is not None, "_init_worker did not run"
    return run_cell(_WORKER_CONTEXT, cell)
