"""Run a grid through the public API, one flat JSON row per cell, resumable."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import amnesiac
from amnesiac.audit import lira_report, penultimate_features, shadow_phi
from amnesiac.bench.grid import Cell, Grid
from amnesiac.bench.speed import measure_speed
from amnesiac.continual import run_continual
from amnesiac.metrics import linear_cka, predict_logits, relearn_steps


def cpu_name() -> str:
    """The processor's model name (Linux), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "amnesiac": amnesiac.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results file; a torn last line (an interrupted write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and fsync it, so an interruption loses at most the current cell."""
    with path.open("a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


class _Context:
    """Data and models shared by the cells of one grid run."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.data = amnesiac.load_dataset(grid.dataset)
        if grid.model == "shipped":
            checkpoint = amnesiac.load_pretrained(grid.dataset)
        else:
            checkpoint = amnesiac.load_checkpoint(grid.path.parent / grid.model)
        self.model, self.meta = checkpoint.model, checkpoint.meta
        self._before: dict[tuple[int, int], dict[str, float]] = {}
        self._audit_base: dict[str, Any] = {}
        self._surrogates: dict[str, torch.Tensor] = {}
        start, stop = grid.test_rows or (0, len(self.data.test_y))
        if stop > len(self.data.test_y):
            raise ValueError(
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

    def shadows(self, progress: bool = False) -> amnesiac.Shadows:
        """The grid's LiRA shadow models, trained with the model's recipe (cached on disk)."""
        recipe = self.meta.get("recipe")
        if recipe is None:
            raise ValueError(
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
        self, model: torch.nn.Module, forget: torch.Tensor, f: Any, original_forget_acc: float
    ) -> dict[str, Any]:
        """LiRA (D_f against D_test), relearn time (back to ``original_forget_acc``) and CKA of
        ``model`` against the original; what depends only on the original and the shadows is
        computed once per process."""
        xt, yt = self.test
        base = self._audit_base
        if not base:
            base["test_logits"] = predict_logits(self.model, xt)
            base["features"] = penultimate_features(self.model, xt)
            if self.grid.shadows:
                shadows = self.shadows()
                base["shadows"] = shadows
                base["shadow_test"] = shadow_phi(shadows, xt, yt)
        xf, yf = f
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        if self.grid.shadows:
            shadows = base["shadows"]
            lira = lira_report(
                {
                    "before": (predict_logits(self.model, xf), base["test_logits"]),
                    "after": (predict_logits(model, xf), predict_logits(model, xt)),
                },
                forget_y=yf,
                test_y=yt,
                shadow_forget=shadow_phi(shadows, xf, yf),
                shadow_test=base["shadow_test"],
                shadow_in=shadows.members[:, forget],
            )
            out["lira_shadow_models"] = lira["shadow_models"]
            for when in ("before", "after"):
                for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "mean_score"):
                    out[f"{when}_lira_{key}"] = lira[when][key]
        out["relearn_steps"] = relearn_steps(
            model, xf, yf, target_acc=original_forget_acc, max_steps=200
        )
        features = penultimate_features(model, xt)
        if features is not None and base["features"] is not None:
            out["cka"] = linear_cka(base["features"], features)
        out["audit_seconds"] = time.perf_counter() - t0
        return out

    def sets(self, k: int, seed: int) -> tuple[torch.Tensor, Any, Any, Any, int]:
        d = self.data
        forget = amnesiac.parse_forget(f"random:{k}:{seed}", d.train_y)
        retain = amnesiac.retain_indices(len(d.train_y), forget)
        ev = amnesiac.retain_eval_indices(len(d.train_y), forget, self.grid.retain_eval_size, seed)
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


def cell_config(cell: Cell) -> amnesiac.UnlearnConfig:
    """The resolved settings of an unlearning or continual cell."""
    return amnesiac.make_config(cell.method, cell.preset, **{"seed": cell.seed, **cell.settings})


def cell_settings(cell: Cell) -> dict[str, Any] | None:
    """The cell's resolved settings (``None`` for the speed cell, or a cell whose settings do
    not resolve: it runs and is recorded as failed)."""
    if cell.kind == "speed":
        return None
    try:
        config = cell_config(cell)
    except Exception:
        return None
    # what a setting the row does not record must be: the value from before it existed
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    defaults.update(config.added_settings)
    return {"values": json.loads(json.dumps(config.to_dict())), "defaults": defaults}


def ran_with(row: dict[str, Any], settings: dict[str, Any] | None, kind: str) -> bool:
    """Whether ``row`` ran with ``settings`` (from :func:`cell_settings`).

    Every setting the row recorded must equal today's; a setting the row does not know (added to
    a method after it ran) must be at the value that reproduces the behaviour from before it
    existed (``added_settings`` of the settings class, else its default). So changing a method's
    defaults or presets reruns exactly the cells it affects.
    """
    if kind == "speed":
        return True
    recorded = row.get("settings")
    if settings is None or not isinstance(recorded, dict):
        return False
    values, defaults = settings["values"], settings["defaults"]
    if not set(recorded) <= set(values):
        return False
    return all(
        recorded[k] == v if k in recorded else v == defaults.get(k) for k, v in values.items()
    )


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
    try:
        if cell.kind == "speed":
            row.update(
                status="ok",
                **measure_speed(
                    ctx.model,
                    ctx.data.train_x,
                    precision=str(cell.settings.get("precision", "fp32")),
                ),
            )
            return row
        if cell.kind == "continual":
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
            )
            test = ctx.test
            row.update(
                status="ok",
                settings=config.to_dict(),
                settings_hash=sha256_json(config.to_dict()),
                from_original=cell.from_original,
                rounds=rounds,
                before_test_acc=amnesiac.evaluate(ctx.model, test=test)["test_acc"],
                seconds={"wall": time.perf_counter() - t0},
            )
            return row
        forget, f, retain, r_ev, n_ev = ctx.sets(cell.k, cell.seed)
        before = ctx.before(cell.k, cell.seed, f, r_ev)
        info = amnesiac.get_method(cell.method)
        config = cell_config(cell)
        row.update(
            settings=config.to_dict(),
            settings_hash=sha256_json(config.to_dict()),
            forget_sha256=amnesiac.forget_sha256(forget),
            retain_eval_size=n_ev,
        )
        t0 = time.perf_counter()
        result = amnesiac.unlearn(
            ctx.model,
            forget=f,
            method=cell.method,
            retain=retain if info.needs_retain else None,
            surrogate=ctx.surrogate(cell.surrogate) if cell.surrogate else None,
            **config.to_dict(),
        )
        wall = time.perf_counter() - t0
        after = amnesiac.evaluate(
            result.model,
            forget=f,
            retain=r_ev,
            test=ctx.test,
            membership=True,
        )
        row.update(
            status="ok",
            steps=result.steps,
            stopped_by=result.stopped_by,
            forgotten=result.forgotten,
            update_fraction=result.update_fraction,
            seconds={**result.seconds, "wall": wall},
            **{f"before_{k}": v for k, v in before.items()},
            **{f"after_{k}": v for k, v in after.items()},
        )
        if cell.audit:
            row.update(audited=True, **ctx.audit(result.model, forget, f, before["forget_acc"]))
    except Exception as e:  # a failed cell is a row, and the grid goes on
        row.update(
            status="failed",
            error=f"{type(e).__name__}: {e}",
            traceback=traceback.format_exc(limit=3),
        )
    return row


def run_grid(
    grid: Grid,
    *,
    results: Path | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Run every cell of ``grid`` not already in ``results``; return all rows of the grid.

    ``workers`` (default: the grid's) cells run at once, each in a process of its own with
    ``threads // workers`` torch threads; rows are appended as cells finish. The speed cell
    measures throughput, so it always runs first and alone. Every row records when this call
    started (``grid_started``), so the report can tell the wall time of a grid run in one
    sitting, shadow models included.
    """
    started = utc_now()
    results = results or grid.path.parent / grid.results
    workers = grid.workers if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # a row counts as done only if it ran with the settings the cell resolves to today
    done = {r["id"] for r in _rows_of(grid, results) if r.get("status") == "ok"}
    todo = [c for c in grid.cells if c.id not in done]
    if grid.shadows and any(c.audit for c in todo):
        # trained once here and loaded by the cells; without a recipe each audited cell
        # records the error in its row
        with contextlib.suppress(ValueError):
            _Context(grid).shadows(progress=progress)
    if todo:
        bar = tqdm(total=len(todo), disable=not progress, desc=f"bench {grid.name}", unit="cell")
        try:
            for row in _rows(grid, todo, workers):
                row["workers"] = workers
                row["grid_started"] = started
                row["finished"] = utc_now()
                append_row(results, row)
                bar.set_postfix_str(f"{row['label']} k={row['k']} seed={row['seed']}")
                bar.update()
                if on_row is not None:
                    on_row(row)
        finally:
            bar.close()
    return current_rows(grid, results)


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
    # longest first, so that no long cell ends the grid with the other workers idle: methods
    # that train from scratch, then the most forget instances (steps and batches grow with k)
    rest.sort(key=lambda c: (_is_iterative(c.method), -c.k * max(c.rounds, 1)))
    threads = max(1, torch.get_num_threads() // workers)
    # spawn, not fork: a forked child of a process that already ran OpenMP threads can hang
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=spawn, initializer=_init_worker, initargs=(grid, threads)
    ) as pool:
        futures = [pool.submit(_run_in_worker, cell) for cell in rest]
        for future in as_completed(futures):
            yield future.result()


STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    """The time now in UTC, as the rows record it (``STAMP_FORMAT``)."""
    return time.strftime(STAMP_FORMAT, time.gmtime())


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


def current_rows(grid: Grid, results: Path) -> list[dict[str, Any]]:
    """The latest row of each cell of ``grid`` in ``results`` that ran with the settings the
    cell resolves to today (rows of older defaults are left out)."""
    return list({r["id"]: r for r in _rows_of(grid, results)}.values())


def _rows_of(grid: Grid, results: Path) -> Iterator[dict[str, Any]]:
    """The rows of ``results``, in file order, of cells of ``grid`` that ran with the settings
    the cell resolves to today."""
    current = {c.id: (c.kind, c.audit, cell_settings(c)) for c in grid.cells}
    for r in read_rows(results):
        if r.get("id") in current:
            kind, audit, settings = current[r["id"]]
            # an audited cell also needs the audit (a failed row has none and stays a row)
            if ran_with(r, settings, kind) and (
                not audit or r.get("audited") or r.get("status") != "ok"
            ):
                yield r
