"""Run a grid through the public API, one flat JSON row per cell, resumable."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import amnesiac
from amnesiac.bench.grid import Cell, Grid
from amnesiac.bench.speed import measure_speed
from amnesiac.continual import run_continual


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
            self.model = amnesiac.load_pretrained(grid.dataset).model
        else:
            self.model = amnesiac.load_checkpoint(grid.path.parent / grid.model).model
        self._before: dict[tuple[int, int], dict[str, float]] = {}

    def sets(self, k: int, seed: int) -> tuple[torch.Tensor, Any, Any, Any, int]:
        d = self.data
        forget = amnesiac.parse_forget(f"random:{k}:{seed}", d.train_y)
        retain = amnesiac.retain_indices(len(d.train_y), forget)
        size = self.grid.retain_eval_size
        ev = retain
        if 0 < size < len(retain):
            g = torch.Generator().manual_seed(seed)
            ev = retain[torch.randperm(len(retain), generator=g)[:size]].sort().values
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
                test=(self.data.test_x, self.data.test_y),
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
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **environment(),
    }
    try:
        if cell.kind == "speed":
            row.update(status="ok", **measure_speed(ctx.model, ctx.data.train_x))
            return row
        if cell.kind == "continual":
            config = amnesiac.make_config(
                cell.method, cell.preset, **{"seed": cell.seed, **cell.settings}
            )
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
            )
            test = (ctx.data.test_x, ctx.data.test_y)
            row.update(
                status="ok",
                settings=config.to_dict(),
                settings_hash=sha256_json(config.to_dict()),
                rounds=rounds,
                before_test_acc=amnesiac.evaluate(ctx.model, test=test)["test_acc"],
                seconds={"wall": time.perf_counter() - t0},
            )
            return row
        forget, f, retain, r_ev, n_ev = ctx.sets(cell.k, cell.seed)
        before = ctx.before(cell.k, cell.seed, f, r_ev)
        info = amnesiac.get_method(cell.method)
        config = amnesiac.make_config(
            cell.method, cell.preset, **{"seed": cell.seed, **cell.settings}
        )
        row.update(
            settings=config.to_dict(),
            settings_hash=sha256_json(config.to_dict()),
            forget_sha256=sha256_json(forget.tolist()),
            retain_eval_size=n_ev,
        )
        t0 = time.perf_counter()
        result = amnesiac.unlearn(
            ctx.model,
            forget=f,
            method=cell.method,
            retain=retain if info.needs_retain else None,
            **config.to_dict(),
        )
        wall = time.perf_counter() - t0
        after = amnesiac.evaluate(
            result.model,
            forget=f,
            retain=r_ev,
            test=(ctx.data.test_x, ctx.data.test_y),
            membership=True,
        )
        row.update(
            status="ok",
            steps=result.steps,
            stopped_by=result.stopped_by,
            forgotten=result.forgotten,
            seconds={**result.seconds, "wall": wall},
            **{f"before_{k}": v for k, v in before.items()},
            **{f"after_{k}": v for k, v in after.items()},
        )
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
) -> list[dict[str, Any]]:
    """Run every cell of ``grid`` not already in ``results``; return all rows of the grid."""
    results = results or grid.path.parent / grid.results
    done = {r["id"] for r in read_rows(results) if r.get("status") == "ok"}
    todo = [c for c in grid.cells if c.id not in done]
    if todo:
        ctx = _Context(grid)
        bar = tqdm(todo, disable=not progress, desc=f"bench {grid.name}", unit="cell")
        for cell in bar:
            bar.set_postfix_str(f"{cell.label} k={cell.k} seed={cell.seed}")
            row = run_cell(ctx, cell)
            append_row(results, row)
            if on_row is not None:
                on_row(row)
    ids = {c.id for c in grid.cells}
    latest: dict[str, dict[str, Any]] = {}
    for r in read_rows(results):
        if r.get("id") in ids:
            latest[r["id"]] = r
    return list(latest.values())
