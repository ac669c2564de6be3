"""Continual unlearning: deletion requests one after another.

The paper's continual scenario: round ``r`` forgets ``per_round`` new training instances starting
from the model round ``r - 1`` produced (chained). With ``from_original=True`` round ``r``
instead solves the union of requests ``1..r`` from the original model, so the anchors are the
original outputs and no round builds on the previous round's damage. After every round we
measure the accuracy on that round's forget set, on every instance forgotten so far (do earlier
requests stay forgotten?), on a fixed sample of the data never requested (D_r) and on the test
set.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from amnesiac._io import atomic_write_bytes
from amnesiac.api import evaluate, unlearn
from amnesiac.data import Splits, retain_eval_indices
from amnesiac.data.anchors import not_retained, random_rows
from amnesiac.errors import InvalidSettingsError
from amnesiac.ledger import Ledger, LedgerError, file_sha256
from amnesiac.methods.base import UnlearnConfig
from amnesiac.models import load_checkpoint


def round_indices(
    train_y: torch.Tensor,
    rounds: int,
    per_round: int,
    seed: int,
    trained: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Distinct random training indices for each round (seeded), drawn from the rows the
    model was ``trained`` on (default: all of them)."""
    if rounds < 1 or per_round < 1:
        raise InvalidSettingsError(
            f"rounds and per_round must be >= 1, got {rounds} and {per_round}"
        )
    return list(random_rows(train_y, rounds * per_round, seed, trained).split(per_round))


def run_continual(
    model: nn.Module,
    data: Splits,
    *,
    rounds: int,
    per_round: int,
    method: str,
    config: UnlearnConfig,
    seed: int = 0,
    retain_eval_size: int = 10000,
    progress: bool = False,
    on_round: Callable[[int, nn.Module, dict[str, Any]], None] | None = None,
    start: list[tuple[nn.Module, dict[str, Any]]] | None = None,
    from_original: bool = True,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    surrogate: torch.Tensor | None = None,
    trained: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """Run ``rounds`` deletion requests in sequence; return one row of measurements per round.

    Args:
        model: The original model (not changed).
        data: The dataset it was trained on.
        rounds: Number of requests.
        per_round: Instances forgotten per request.
        method: Registry name of the method; it must not need the retained data.
        config: The method's settings.
        seed: Seed of the instances drawn and of the D_r sample.
        retain_eval_size: D_r is measured on a seeded sample of this many instances that no
            round requests (0: all of them).
        progress: Show each round's progress bar.
        on_round: Called after each round with ``(round, model, row)`` (e.g. to save the model).
        start: Rounds already done, as ``(model, row)`` pairs, to resume after.
        from_original: Solve round ``r`` for every instance requested so far, from ``model``
            (the default), instead of for round ``r``'s instances from the previous round's
            model (``False``, the paper's scenario). On Fashion-MNIST (l2ul, 5 requests of 16,
            validation seed 100) the chained rounds lost 28.8 validation points with 16% of the
            earlier instances right again; re-solved from the original, 11.0 with none, at 2.5x
            the seconds (``benchmarks/VALIDATION.md``).
        test: The test images and labels to measure (default: all of ``data``'s test split).
        surrogate: Anchor images for every round (:func:`amnesiac.unlearn`'s ``surrogate=``).
        trained: The training rows the model was trained on (default: all; a forget-ready
            model's reserved anchors are not): the rounds and D_r are drawn from them.
    """
    plan = round_indices(data.train_y, rounds, per_round, seed, trained)
    n = len(data.train_y)
    left_out = not_retained(n, torch.cat(plan), torch.arange(n) if trained is None else trained)
    never = retain_eval_indices(n, left_out, retain_eval_size, seed)
    retain = (data.train_x[never], data.train_y[never])
    test = test if test is not None else (data.test_x, data.test_y)
    rows = [row for _, row in (start or [])]
    current = start[-1][0] if start else model
    for r in range(len(rows), rounds):
        idx = plan[r]
        so_far = torch.cat(plan[: r + 1])
        # a re-solved round forgets the union in the order its ledger entry records it (sorted),
        # so that rerunning the entry's indices and settings gives its model bit for bit
        asked = so_far.sort().values if from_original else idx
        result = unlearn(
            model if from_original else current,
            forget=(data.train_x[asked], data.train_y[asked]),
            method=method,
            surrogate=surrogate,
            progress=progress,
            **round_settings(config, r),
        )
        current = result.model
        acc = evaluate(
            current, forget=(data.train_x[idx], data.train_y[idx]), retain=retain, test=test
        )
        acc_all = evaluate(current, forget=(data.train_x[so_far], data.train_y[so_far]))
        row = {
            "round": r + 1,
            "forget_indices": idx.tolist(),
            "round_forget_acc": acc["forget_acc"],
            "all_forget_acc": acc_all["forget_acc"],
            "retain_acc": acc["retain_acc"],
            "test_acc": acc["test_acc"],
            "forgotten": result.forgotten,
            "steps": result.steps,
            "seconds": result.seconds.get("total", 0.0),
        }
        rows.append(row)
        if on_round is not None:
            on_round(r + 1, current, row)
    return rows


def round_settings(config: UnlearnConfig, r: int) -> dict[str, Any]:
    """The settings round ``r`` (from 0) runs with: ``config`` with seed ``config.seed + r``, so
    the rounds draw differently; the ledger records these."""
    return {**config.to_dict(), "seed": config.seed + r}


def plot_continual(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Per-round accuracies as a PNG, written atomically."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    xs = [r["round"] for r in rows]
    for key, label in (
        ("round_forget_acc", "this round's D_f"),
        ("all_forget_acc", "all D_f so far"),
        ("retain_acc", "D_r (sample)"),
        ("test_acc", "D_test"),
    ):
        ax.plot(xs, [r[key] for r in rows], "o-", label=label)
    ax.set_xlabel("round (deletion request)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def round_path(folder: str | Path, r: int) -> Path:
    """Where round ``r``'s model of a continual run in ``folder`` is written."""
    return Path(folder) / f"round-{r}.safetensors"


def resume_rounds(
    ledger: Ledger, original: str | Path, folder: str | Path, *, from_original: bool
) -> list[tuple[nn.Module, dict[str, Any]]]:
    """The rounds ``ledger`` already recorded for a continual run from ``original`` whose round
    models are in ``folder``, as ``start=`` for :func:`run_continual`.

    Raises:
        LedgerError: The ledger is of another run (another model, or the other scheme), or a
            round's model is missing or does not match its entry.
    """
    start: list[tuple[nn.Module, dict[str, Any]]] = []
    prev = first = file_sha256(original)
    for i, e in enumerate(ledger.entries()):
        path = round_path(folder, i + 1)
        if (
            e.get("input_sha256") != (first if from_original else prev)
            or bool(e.get("from_original")) != from_original
            or not path.is_file()
        ):
            raise LedgerError(
                f"{ledger.path} does not continue from {original} (round {i + 1}); use a new "
                "--out folder"
            )
        if file_sha256(path) != e["output_sha256"]:
            raise LedgerError(f"{path} does not match {ledger.path}; use a new --out folder")
        start.append((load_checkpoint(path).model, e["continual_row"]))
        prev = e["output_sha256"]
    return start
