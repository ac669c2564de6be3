"""The benchmark harness: grids of runs through the public API, results rows, RESULTS.md."""

from amnesiac.bench.grid import Cell, Compare, Grid, load_grid
from amnesiac.bench.report import summarize, write_report
from amnesiac.bench.resume import current_rows, read_rows
from amnesiac.bench.runner import run_grid

__all__ = [
    "Cell",
    "Compare",
    "Grid",
    "current_rows",
    "load_grid",
    "read_rows",
    "run_grid",
    "summarize",
    "write_report",
]
