"""What ``amnesiac unlearn`` writes: the report, the model, the ledger entry, the page."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch

import amnesiac
from amnesiac._io import atomic_write_bytes, atomic_write_text
from amnesiac._versions import software_versions
from amnesiac.data import Splits
from amnesiac.data.anchors import RequestRows
from amnesiac.html_report import ledger_view, render_report_html
from amnesiac.ledger import Ledger, Request, forget_sha256
from amnesiac.models.checkpoint import checkpoint_bytes
from amnesiac.records import UnlearnReport

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass
class RunSets:
    """What one run reads and is measured on."""

    forget: torch.Tensor  # the forget indices the model was trained on
    rows: RequestRows  # the request, split on the model's anchors
    retain_all: torch.Tensor  # every retained index the model was trained on
    retain_ev: torch.Tensor  # the D_r evaluation subset
    f_set: Pair
    r_eval: Pair
    test: Pair
    surrogate: torch.Tensor | None
    anchors: str | None  # what the anchors are, for a person


def report_json(
    args: argparse.Namespace,
    data: Splits,
    source: str,
    model_sha: str,
    sets: RunSets,
    before: dict[str, float],
    after: dict[str, float],
    result: amnesiac.UnlearnResult,
    seconds: dict[str, float],
) -> UnlearnReport:
    """The ``--report`` record."""
    return UnlearnReport(
        method=args.method,
        preset=args.preset,
        settings=result.config,
        dataset=data.name,
        model=source,
        model_sha256=model_sha,
        forget_spec=args.forget,
        forget_indices=sets.forget.tolist(),
        forget_sha256=forget_sha256(sets.forget),
        retain_eval_size=len(sets.retain_ev),
        surrogate=args.surrogate,
        anchors=sets.anchors,
        released=list(sets.rows.released),
        test_size=len(sets.test[1]),
        before=before,
        after=after,
        steps=result.steps,
        stopped_by=result.stopped_by,
        forgotten=result.forgotten,
        update_fraction=result.update_fraction,
        rescued_from=result.rescued_from,
        seconds=seconds,
        versions=software_versions(),
        history=result.history,
    )


def write_outputs(
    args: argparse.Namespace,
    outs: list[Any],
    meta: dict[str, Any],
    result: amnesiac.UnlearnResult,
    request: Request | None,
    report: UnlearnReport,
) -> UnlearnReport:
    """Write the model, then the ledger entry, the report and the forget indices; returns the
    report with the model's path and SHA-256 (``out``, ``out_sha256``)."""
    if args.out:
        blob = checkpoint_bytes(result.model, meta)
        report = report.replace(out=args.out, out_sha256=hashlib.sha256(blob).hexdigest())
        atomic_write_bytes(outs[0], blob)
        print(f"saved {args.out}")
    if request is not None:  # after the model: a crash in between leaves no ledger entry
        entry = Ledger(args.ledger).record(
            request,
            {
                "metrics": {"before": report.before, "after": report.after},
                "forgotten": result.forgotten,
                "steps": result.steps,
            },
        )
        print(f"ledger {args.ledger}: request {entry['request_id']} recorded")
    if args.report:
        atomic_write_text(args.report, json.dumps(report.to_json(), indent=2))
        print(f"report {args.report}")
    if args.forget_out:
        forget = report.forget_indices
        atomic_write_text(args.forget_out, "\n".join(map(str, forget)) + "\n")
    return report


def write_html(
    args: argparse.Namespace,
    report: UnlearnReport,
    outcomes: dict[str, Any],
    sets: RunSets,
    classes: Sequence[str],
) -> None:
    """The request's page, with its ledger entry when it went into a ledger."""
    view = None
    if args.ledger:
        view = ledger_view(
            args.ledger, output_sha256=report.out_sha256, forget_sha256=report.forget_sha256
        )
    page = render_report_html(
        report, outcomes=outcomes, forget_x=sets.f_set[0], classes=classes, ledger=view
    )
    atomic_write_text(args.html, page)
    print(f"page {args.html} ({len(page.encode()) / 1024:.0f} KiB)")
