"""The PNG plots of RESULTS.md, written beside it."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from amnesiac.continual import plot_continual
from amnesiac.records import BenchRow


def _save(fig: Any, out_dir: Path, name: str) -> str:
    """Lay out and write a figure; return its file name."""
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    return name


def write_plots(summary: list[dict[str, Any]], out_dir: Path, prefix: str) -> list[str]:
    """Write the three PNG plots of :func:`amnesiac.bench.tables.summarize`'s ``summary``;
    return their file names."""
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in summary:
        by_label[s["label"]].append(s)
    return [
        _save(_test_acc_vs_k(by_label), out_dir, f"{prefix}_test_acc_vs_k.png"),
        _save(_seconds(by_label), out_dir, f"{prefix}_seconds.png"),
        _save(_drop_vs_seconds(by_label), out_dir, f"{prefix}_drop_vs_seconds.png"),
    ]


def _test_acc_vs_k(by_label: dict[str, list[dict[str, Any]]]) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, ss in by_label.items():
        ss = sorted(ss, key=lambda s: s["k"])
        ax.plot(
            [s["k"] for s in ss], [statistics.fmean(s["test_acc"]) for s in ss], "o-", label=label
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("forget-set size k")
    ax.set_ylabel("test accuracy after unlearning (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _seconds(by_label: dict[str, list[dict[str, Any]]]) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    labels = list(by_label)
    means = [statistics.fmean([x for s in by_label[la] for x in s["seconds"]]) for la in labels]
    ax.barh(labels, means)
    ax.set_xscale("log")
    ax.set_xlabel("wall time per run, mean over k and seeds (s, log scale)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def _drop_vs_seconds(by_label: dict[str, list[dict[str, Any]]]) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, ss in by_label.items():
        xs = [statistics.fmean(s["seconds"]) for s in ss]
        ys = [statistics.fmean(s["test_drop"]) for s in ss]
        ax.scatter(xs, ys, label=label)
        for s, x, y in zip(ss, xs, ys, strict=True):
            ax.annotate(f"k={s['k']}", (x, y), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale)")
    ax.set_ylabel("test-accuracy drop (points)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def write_continual_plot(row: BenchRow, out_dir: Path, prefix: str) -> str:
    """Write the plot of a continual row's rounds; return its file name (the label, the number
    of rounds and the seed, so two rows of one method differing in rounds keep their plots)."""
    rounds = row.rounds or []
    name = f"{prefix}_continual_{_slug(row.label)}_{len(rounds)}x{row.k}_seed{row.seed}.png"
    plot_continual(rounds, out_dir / name, f"{row.label}, {len(rounds)} rounds of {row.k}")
    return name
