"""``amnesiac report``: the HTML page of a request, later, from its saved report and models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from amnesiac._io import atomic_write_text, check_writable
from amnesiac.cli.common import SHIPPED, CLIError, check_fit, held_out_test, load_model, model_path
from amnesiac.data import Splits, load_dataset, parse_forget
from amnesiac.hashing import file_sha256, forget_sha256
from amnesiac.html_report import (
    DEFAULT_MAX_IMAGES,
    ledger_view,
    model_outcomes,
    relabel_run,
    render_report_html,
)
from amnesiac.models import Checkpoint, load_checkpoint
from amnesiac.records import RecordError, UnlearnReport


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write the HTML page of a request from its saved report and models",
        description="Write the HTML page of a deletion request from the JSON report "
        "`amnesiac unlearn --report` wrote, the models before and after, and optionally an "
        "`amnesiac audit` file and the deletion ledger. The models are run on D_f and D_test "
        "again, and must give the report's accuracies.",
    )
    p.add_argument("report", help="the JSON report of the run (amnesiac unlearn --report)")
    p.add_argument("--html", required=True, help="HTML page to write")
    p.add_argument(
        "--model", default=None, help="the unlearned checkpoint (default: the report's 'out')"
    )
    p.add_argument(
        "--original",
        default=None,
        help="the model before unlearning (default: the report's 'model')",
    )
    p.add_argument(
        "--audit",
        default=None,
        help="JSON of `amnesiac audit --out` on the same forget set: adds the membership "
        "numbers, the LiRA score histograms and the ROC curve",
    )
    p.add_argument(
        "--ledger",
        default=None,
        help="the deletion ledger the request was recorded in: adds its entry, its hash and "
        "the chain check",
    )
    p.add_argument("--data-dir", default=None, help="folder to look for the dataset in first")
    p.add_argument(
        "--download",
        action="store_true",
        help="download the dataset with torchvision if not found (needs a network)",
    )
    p.add_argument(
        "--max-images",
        type=int,
        default=DEFAULT_MAX_IMAGES,
        help=f"most forget instances the page shows (default {DEFAULT_MAX_IMAGES})",
    )
    p.set_defaults(func=run)
    return p


def read_json(path: str, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; a clear error when it is missing or not one."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"{what} {path} does not exist")
    try:
        value = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CLIError(f"{what} {path} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise CLIError(f"{what} {path} is not a JSON object")
    return value


def _find(spec: str, report_path: Path) -> Path:
    """A model path as the report records it: as given, else beside the report."""
    p = Path(spec)
    if p.is_file() or p.is_absolute():
        return p
    return report_path.parent / p if (report_path.parent / p).is_file() else p


def _model(
    spec: str, dataset: str, report_path: Path, recorded_sha: str | None, role: str, flag: str
) -> tuple[Checkpoint, str, str]:
    """The checkpoint ``spec`` (``shipped:...`` or a path), its path and SHA-256, checked
    against the SHA-256 the report recorded for it."""
    if spec.split(":")[0] in SHIPPED:
        ckpt, _ = load_model(spec, dataset)
        path = str(model_path(spec, dataset))
    else:
        found = _find(spec, report_path)
        if not found.is_file():
            raise CLIError(f"the {role} model {spec} does not exist; pass it with {flag}")
        ckpt, path = load_checkpoint(found), str(found)
    sha = file_sha256(path)
    if recorded_sha and sha != recorded_sha:
        raise CLIError(
            f"{path} is not the {role} model of {report_path} (sha256 {sha[:12]}..., the report "
            f"says {recorded_sha[:12]}...); pass the right one with {flag}"
        )
    return ckpt, path, sha


def _check_numbers(report: UnlearnReport, outcomes: dict[str, Any], model: str) -> None:
    """Refuse models or data that do not give the report's D_f and D_test accuracies."""
    insts = outcomes["instances"]
    k = max(len(insts), 1)
    measured = {
        ("before", "forget_acc"): 100.0 * sum(i["before"] == i["label"] for i in insts) / k,
        ("after", "forget_acc"): 100.0 * sum(i["after"] == i["label"] for i in insts) / k,
        ("before", "test_acc"): outcomes["test_acc_before"],
        ("after", "test_acc"): outcomes["test_acc_after"],
    }
    for (when, key), value in measured.items():
        recorded = getattr(report, when).get(key)
        if recorded is not None and abs(recorded - value) > 1e-3:
            raise CLIError(
                f"{key} {when} unlearning is {value:.2f}% with these models and data, the "
                f"report says {recorded:.2f}%: {model} and the original are not the run's "
                "models, or the dataset changed; pass the run's models with --model and "
                "--original"
            )


def _forget(report: UnlearnReport, data: Splits, path: str) -> torch.Tensor:
    """The report's forget indices, checked against its forget_sha256."""
    idx = parse_forget(report.forget_indices, data.train_y)
    forget = torch.tensor(report.forget_indices, dtype=torch.int64)
    if len(idx) != len(forget) or forget_sha256(forget) != report.forget_sha256:
        raise CLIError(
            f"report {path}: its forget_indices do not match its forget_sha256; it was edited"
        )
    return forget


def _audit(path: str, report: UnlearnReport) -> dict[str, Any]:
    audit = read_json(path, "audit")
    if "accuracy" not in audit:
        raise CLIError(f"audit {path} is not an `amnesiac audit --out` file (no 'accuracy')")
    k = len(report.forget_indices)
    recorded = audit.get("forget_sha256")
    if (recorded and recorded != report.forget_sha256) or (
        not recorded and (audit.get("sizes") or {}).get("forget") != k
    ):
        raise CLIError(
            f"audit {path} is of another forget set than the report's ({k} instances, "
            f"forget_sha256 {report.forget_sha256[:12]}...); audit this request's set"
        )
    return audit


def run(args: argparse.Namespace) -> int:
    """Write ``--html``, the page of the request ``args.report`` describes."""
    out = check_writable(args.html)
    if args.max_images < 0:
        raise CLIError(f"--max-images must be >= 0, got {args.max_images}")
    try:
        report = UnlearnReport.from_json(read_json(args.report, "report"))
    except RecordError as e:
        raise CLIError(
            f"report {args.report}: {e}; give a report written by `amnesiac unlearn --report`"
        ) from None
    audit = _audit(args.audit, report) if args.audit else None
    data = load_dataset(report.dataset, args.data_dir, download=args.download)
    rpath = Path(args.report)
    model_spec = args.model or report.out
    if not model_spec:
        raise CLIError(
            f"report {args.report} names no unlearned model (the run had no --out); pass --model"
        )
    original, o_path, o_sha = _model(
        args.original or report.model,
        data.name,
        rpath,
        report.model_sha256,
        "original",
        "--original",
    )
    unlearned, u_path, u_sha = _model(
        model_spec, data.name, rpath, report.out_sha256, "unlearned", "--model"
    )
    check_fit(original, data, o_path)
    check_fit(unlearned, data, u_path)
    forget = _forget(report, data, args.report)
    f_set = (data.train_x[forget], data.train_y[forget])
    test = held_out_test(data, report.surrogate)
    outcomes = model_outcomes(
        original.model,
        unlearned.model,
        forget=f_set,
        test=test,
        forget_indices=forget.tolist(),
        relabel=relabel_run(report),
    )
    _check_numbers(report, outcomes, u_path)
    view = None
    if args.ledger:
        view = ledger_view(args.ledger, output_sha256=u_sha, forget_sha256=report.forget_sha256)
    shown = report.replace(model_sha256=o_sha, out=str(u_path), out_sha256=u_sha)
    page = render_report_html(
        shown,
        outcomes=outcomes,
        forget_x=f_set[0],
        classes=data.classes,
        audit=audit,
        ledger=view,
        max_images=args.max_images,
    )
    atomic_write_text(out, page)
    print(f"wrote {out} ({len(page.encode()) / 1024:.0f} KiB)")
    return 0
