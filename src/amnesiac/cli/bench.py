"""``amnesiac bench``: run a benchmark grid and/or write its RESULTS.md."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from amnesiac import distributed
from amnesiac._io import check_writable
from amnesiac.cli.common import tqdm_write
from amnesiac.cli.flags import no_progress_flag
from amnesiac.errors import InvalidSettingsError
from amnesiac.records import BenchRow


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run a benchmark grid and/or write its RESULTS.md and RESULTS.html",
        parents=[no_progress_flag()],
    )
    p.add_argument(
        "grid",
        nargs="?",
        default="benchmarks/fashion_mnist.yaml",
        help="grid YAML file (default: benchmarks/fashion_mnist.yaml)",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="write RESULTS.md, the plots and RESULTS.html (the same report as one page, plots "
        "inline) from the rows already there (runs nothing)",
    )
    p.add_argument("--results", default=None, help="results file (default: from the grid)")
    p.add_argument(
        "--full-retain",
        action="store_true",
        help="measure D_r on all retained instances instead of a 10,000 subset",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="cells run at once, each in its own process with an equal share of the torch "
        "threads (default: the grid's 'workers', else 1)",
    )
    p.set_defaults(func=run)
    return p


def _show(row: BenchRow) -> None:
    """One line per finished cell, above the progress bar."""
    if not row.ok:
        tqdm_write(f"FAILED {row.label} k={row.k} seed={row.seed}: {row.error}")
    elif row.kind == "unlearn":
        v = row.value
        tqdm_write(
            f"{row.label:<22} k={row.k:<4} seed={row.seed} "
            f"D_f {v('after_forget_acc'):6.2f}  D_r {v('after_retain_acc'):6.2f}"
            f"  D_test {v('after_test_acc'):6.2f}  {row.wall:7.1f} s"
        )


def run(args: argparse.Namespace) -> int:
    """Run the grid's missing cells, or with ``--report`` write its report."""
    from amnesiac.bench import current_rows, load_grid, run_grid, write_report
    from amnesiac.bench.html import html_path

    if args.workers is not None and args.workers < 1:
        raise InvalidSettingsError(f"--workers must be >= 1, got {args.workers}")
    grid = load_grid(args.grid, full_retain=args.full_retain)
    results = Path(args.results) if args.results else grid.path.parent / grid.results
    check_writable(results)
    if not args.report:
        t0 = time.perf_counter()
        rows = run_grid(
            grid,
            results=results,
            progress=not args.no_progress,
            on_row=_show,
            workers=args.workers,
        )
        print(f"{len(rows)} rows in {results} ({time.perf_counter() - t0:.0f} s this run)")
    elif distributed.is_main():  # under torchrun one rank writes the report
        rows = current_rows(grid, results)
        command = f"amnesiac bench {args.grid}" + (" --full-retain" if args.full_retain else "")
        path = write_report(grid, rows, command=command)
        print(f"wrote {path} and {html_path(path)}")
    return 0
