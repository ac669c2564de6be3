"""The request page put together: :func:`render_report_html` from data, :func:`build_report_html`
from the models, and :func:`ledger_view` to find and check a request's ledger entry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from amnesiac.errors import InvalidSettingsError
from amnesiac.hashing import entry_hash
from amnesiac.html_report.evidence import LedgerView, ledger_section, lira_plots, membership
from amnesiac.html_report.grid import DEFAULT_MAX_IMAGES, class_damage, instance_grid
from amnesiac.html_report.markup import page
from amnesiac.html_report.outcomes import Pair, model_outcomes
from amnesiac.html_report.summary import accuracy, header, relabel_run
from amnesiac.ledger import (
    LedgerError,
    check_chain,
    entry_forgets,
    find_entry,
    read_ledger,
)
from amnesiac.ops.layout import INFERENCE_BATCH_SIZE
from amnesiac.records import UnlearnReport


def render_report_html(
    report: UnlearnReport | dict[str, Any],
    *,
    outcomes: dict[str, Any],
    forget_x: Tensor,
    classes: Sequence[str] = (),
    audit: dict[str, Any] | None = None,
    ledger: LedgerView | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
) -> str:
    """The request page as one self-contained HTML string (images as PNG data URIs, no script).

    Args:
        report: The run's report, as ``amnesiac unlearn --report`` writes it (``model_sha256``,
            ``out`` and ``out_sha256`` are shown where present).
        outcomes: :func:`amnesiac.html_report.model_outcomes` of the original and unlearned
            models on the report's D_f and D_test.
        forget_x: D_f's images, in the order of ``report["forget_indices"]``.
        classes: Class names (label ``i`` is ``classes[i]``; numbers where missing).
        audit: An ``amnesiac audit`` result of the same forget set: adds the membership table
            and the LiRA plots.
        ledger: The request's ledger entry (:func:`ledger_view`).
        max_images: The most forget instances the grid shows.

    Shape:
        ``forget_x``: ``(K, C, H, W)`` in [0, 1].

    Raises:
        ValueError: The report, the outcomes and the images are not of the same forget set.
        RecordError: The report lacks a field or holds one of the wrong type.
    """
    report = UnlearnReport.of(report)
    k = len(report.forget_indices)
    indices = [inst["index"] for inst in outcomes["instances"]]
    if indices != report.forget_indices or len(forget_x) != k:
        raise InvalidSettingsError(
            f"the report has {k} forget instances, the outcomes {len(indices)} and the images "
            f"{len(forget_x)}; build all three from the same forget set, in the same order"
        )
    objective = str(report.settings.get("objective", "misclassify"))
    body = [
        header(report, ledger),
        accuracy(report),
        membership(audit) if audit else "",
        instance_grid(
            outcomes["instances"],
            forget_x,
            classes,
            objective=objective,
            max_images=max_images,
        ),
        class_damage(outcomes, classes),
        lira_plots(audit) if audit else "",
        ledger_section(ledger) if ledger is not None else "",
    ]
    title = f"amnesiac: {report.method} forgot {k} {report.dataset} instances"
    return page(title, "\n".join(part for part in body if part))


def build_report_html(
    report: UnlearnReport | dict[str, Any],
    original: nn.Module,
    unlearned: nn.Module,
    *,
    forget: Pair,
    test: Pair,
    classes: Sequence[str] = (),
    audit: dict[str, Any] | None = None,
    ledger: LedgerView | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> str:
    """Run both models on D_f and D_test (:func:`model_outcomes`) and render the page.

    ``forget`` must be the report's D_f in the order of ``report["forget_indices"]`` and
    ``test`` its D_test; see :func:`render_report_html` for the rest.

    Example:
        >>> import torch
        >>> report = {"method": "l2ul", "dataset": "digits", "model": "shipped:digits",
        ...           "forget_spec": "given", "forget_indices": [0],
        ...           "forget_sha256": amnesiac.forget_sha256([0]), "steps": 0,
        ...           "stopped_by": "no_steps", "forgotten": False,
        ...           "before": {"forget_acc": 100.0, "test_acc": 95.0},
        ...           "after": {"forget_acc": 100.0, "test_acc": 95.0}}
        >>> page = build_report_html(report, model, model, forget=(x_f[:1], y_f[:1]),
        ...                          test=(x_t, y_t))
        >>> page.startswith("<!DOCTYPE html>") and "<script" not in page
        True
    """
    report = UnlearnReport.of(report)
    outcomes = model_outcomes(
        original,
        unlearned,
        forget=forget,
        test=test,
        forget_indices=report.forget_indices,
        relabel=relabel_run(report),
        batch_size=batch_size,
    )
    return render_report_html(
        report,
        outcomes=outcomes,
        forget_x=forget[0],
        classes=classes,
        audit=audit,
        ledger=ledger,
        max_images=max_images,
    )


def ledger_view(
    path: str | Path, *, output_sha256: str | None = None, forget_sha256: str | None = None
) -> LedgerView:
    """The ledger entry of a request (the latest that produced ``output_sha256`` and forgot
    ``forget_sha256``, each only where given), with the chain checked over the whole file.

    A broken chain does not raise: the page shows where it breaks.

    Raises:
        LedgerError: The file is missing or unreadable, or has no entry of this request.
    """
    path = Path(path)
    if not path.is_file():
        raise LedgerError(f"ledger {path} does not exist; give the ledger the request is in")
    entries = read_ledger(path)
    i = find_entry(entries, output_sha256=output_sha256, forget_sha256=forget_sha256)
    if i is None:
        what = " and ".join(
            f"{name} {value[:12]}..."
            for name, value in (("model sha256", output_sha256), ("forget_sha256", forget_sha256))
            if value
        )
        raise LedgerError(
            f"ledger {path} has no entry with {what} among its {len(entries)} entries; give "
            "the ledger this request was recorded in, or leave out the ledger"
        )
    entry = entries[i]
    problem = check_chain(entries)
    try:
        hash_ok = entry_hash(entry) == entry.get("hash")
    except ValueError:
        hash_ok = False
    return LedgerView(
        path=str(path),
        entry=entry,
        position=i + 1,
        total=len(entries),
        chain_problem=None if problem is None else str(problem),
        hash_ok=hash_ok,
        same_forget_set=forget_sha256 is None or entry_forgets(entry, forget_sha256),
    )
