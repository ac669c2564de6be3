"""``amnesiac unlearn``: forget training instances and report before/after accuracy."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

import amnesiac
from amnesiac import distributed
from amnesiac._io import atomic_write_bytes, check_writable
from amnesiac.cli.common import (
    MODEL_HELP,
    CLIError,
    anchors_line,
    check_fit,
    fmt,
    held_out_test,
    load_data,
    load_model,
    method_config,
    model_path,
    run_anchors,
    table,
)
from amnesiac.cli.evalcache import before_evaluation, evaluation
from amnesiac.cli.flags import (
    add_dataclass_flags,
    data_flags,
    forget_epilog,
    no_progress_flag,
    retain_eval_size_flag,
)
from amnesiac.cli.unlearn_outputs import RunSets, report_json, write_html, write_outputs
from amnesiac.data import (
    Splits,
    parse_forget,
    retain_eval_indices,
    retain_indices,
)
from amnesiac.data.anchors import RequestRows, not_retained, split_request, trained_rows
from amnesiac.data.surrogate import SURROGATE_SPEC_HELP
from amnesiac.html_report import model_outcomes, relabel_run
from amnesiac.ledger import Ledger, Request, file_sha256, forget_sha256
from amnesiac.methods.base import (
    MethodInfo,
    accepting,
    data_parallel_methods,
    forget_only_cost,
)
from amnesiac.models import Checkpoint
from amnesiac.models.checkpoint import checkpoint_bytes
from amnesiac.records import UnlearnReport

DEFAULT_METHOD = "l2ul"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``unlearn`` command to ``subparsers`` (method settings come as extra flags)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "unlearn",
        help="forget training instances and report before/after accuracy",
        description="Forget training instances. Method settings are flags; see\n"
        "`amnesiac unlearn --method NAME --help` for that method's.",
        parents=[data_flags(), retain_eval_size_flag(0), no_progress_flag()],
        epilog=forget_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=None,
        help=MODEL_HELP,
    )
    p.add_argument(
        "--forget",
        required=True,
        help="the training instances to forget, in one of the forms below",
    )
    p.add_argument(
        "--method", default=DEFAULT_METHOD, help="unlearning method (see `amnesiac methods`)"
    )
    p.add_argument("--preset", default=None, help="a named settings bundle, e.g. paper")
    p.add_argument(
        "--surrogate",
        default=None,
        help=f"{SURROGATE_SPEC_HELP}; for methods that accept it "
        f"({', '.join(accepting('surrogate'))}). Test rows taken from the dataset's own test "
        "split are left out of D_test",
    )
    p.add_argument(
        "--no-anchors",
        action="store_true",
        help="forget without the model's own anchors (forget-only), even where it has them",
    )
    p.add_argument("--out", default=None, help="unlearned checkpoint to write")
    p.add_argument("--report", default=None, help="JSON report to write")
    p.add_argument("--forget-out", default=None, help="write the forget indices to this .txt")
    p.add_argument(
        "--html",
        default=None,
        help="write the request's page: one self-contained HTML file with the forgotten images, "
        "predictions before and after, per-class damage and, with --ledger, the ledger entry "
        "(`amnesiac report` makes it later from a saved --report)",
    )
    p.add_argument(
        "--ledger",
        default=None,
        help="deletion ledger (JSON lines, hash-chained) to append this request to; the request "
        "must start from the ledger's latest model (needs --out)",
    )
    p.add_argument(
        "--hash-indices",
        action="store_true",
        help="store the SHA-256 of the forget indices in the ledger instead of the indices",
    )
    p.add_argument(
        "--request-id",
        default=None,
        help="ledger request id (default: a hash of the input model, forget set and settings)",
    )
    p.add_argument(
        "--from-original",
        action="store_true",
        help="with --ledger: re-solve every request so far and this one from the ledger's "
        "original model (--model must be the first request's input) instead of chaining from "
        "the latest model; the run forgets the union of their forget sets",
    )
    p.set_defaults(func=run, takes_extra=True)
    return p


def add_method_help(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Add the settings of the method named in ``argv`` to ``parser``'s help (``unlearn -h``)."""
    method = DEFAULT_METHOD
    if "--method" in argv and argv.index("--method") + 1 < len(argv):
        method = argv[argv.index("--method") + 1]
    group = parser.add_argument_group(f"settings of method {method!r}")
    add_dataclass_flags(group, amnesiac.get_method(method).config_cls)


def _input_path(args: argparse.Namespace, dataset: str) -> str | Path:
    """The file of the model the run starts from (the shipped one for ``--model shipped``)."""
    return model_path(args.model, dataset)


def _ledger_request(
    args: argparse.Namespace, dataset: str, forget: torch.Tensor, settings: dict[str, Any]
) -> Request:
    """The ledger's verdict on this request (see :meth:`amnesiac.ledger.Ledger.request`)."""
    if not args.out:
        raise CLIError("--ledger needs --out: the ledger records the model a request produces")
    check_writable(args.ledger)
    return Ledger(args.ledger).request(
        dataset=dataset,
        input_model=_input_path(args, dataset),
        forget_indices=forget.tolist(),
        method=args.method,
        settings=settings,
        output_model=args.out,
        preset=args.preset,
        request_id=args.request_id,
        store_indices=not args.hash_indices,
        from_original=args.from_original,
    )


def _sets(
    args: argparse.Namespace,
    data: Splits,
    ckpt: Checkpoint,
    rows: RequestRows,
    info: MethodInfo,
) -> RunSets:
    """D_f, D_r (rows the model was trained on), D_test and the anchor images (whose test rows
    leave D_test)."""
    n = len(data.train_y)
    forget = torch.tensor(rows.forget, dtype=torch.int64)
    left_out = not_retained(n, forget, trained_rows(n, ckpt.meta.get("anchors")))
    retain_all = retain_indices(n, left_out)
    retain_ev = retain_eval_indices(n, left_out, args.retain_eval_size, 0)
    f_set = (data.train_x[forget], data.train_y[forget])
    r_eval = (data.train_x[retain_ev], data.train_y[retain_ev])
    surrogate, described, spec = run_anchors(args, data, info, rows.anchors)
    test = held_out_test(data, spec)  # D_test must not hold the anchors
    return RunSets(forget, rows, retain_all, retain_ev, f_set, r_eval, test, surrogate, described)


def _print_outcome(
    args: argparse.Namespace,
    sets: RunSets,
    before: dict[str, float],
    after: dict[str, float],
    result: amnesiac.UnlearnResult,
    seconds: dict[str, float],
) -> None:
    """The before/after table and how the run went."""
    rows = [
        [
            name,
            fmt(before[f"{key}_acc"]),
            fmt(after[f"{key}_acc"]),
            f"{after[f'{key}_acc'] - before[f'{key}_acc']:+.2f}",
        ]
        for name, key in (
            ("D_f (forget)", "forget"),
            ("D_r (retain)", "retain"),
            ("D_test", "test"),
        )
    ]
    print(table(rows, ["accuracy %", "before", "after", "change"]))
    n_ev = len(sets.retain_ev)
    r_note = "all" if n_ev == len(sets.retain_all) else f"a seeded subset of {n_ev}"
    print(f"D_r evaluated on {r_note} retained instances")
    kept = f"; update shrunk to {result.update_fraction:.1%}" if result.update_fraction < 1 else ""
    print(
        f"steps: {result.steps} (stopped by {result.stopped_by}; forgotten: "
        f"{'yes' if result.forgotten else 'NO'}{kept})"
    )
    if result.rescued_from is not None:
        print(
            f"a first run diverged ({result.rescued_from}); this one ran with the gradient norm "
            f"bounded at {result.config['clip_grad_norm']:g}"
        )
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))


def _announce(
    args: argparse.Namespace,
    data: Splits,
    sets: RunSets,
    info: MethodInfo,
    source: str,
    config: amnesiac.UnlearnConfig,
) -> None:
    """What the run forgets, from which model, and with which anchors (or what it costs
    without them)."""
    print(
        f"{args.method}: forgetting {len(sets.forget)} of {len(data.train_y)} {data.name} "
        f"training instances ({args.forget}) from {source}"
    )
    if sets.rows.released:
        left = len(sets.rows.anchors["rows"]) if sets.rows.anchors else 0
        print(
            f"released: {len(sets.rows.released)} requested images are reserved anchors the "
            f"model never trained on; they leave its anchor set ({left:,} left)"
        )
    if sets.anchors is not None:
        n = 0 if sets.surrogate is None else len(sets.surrogate)
        print(anchors_line(sets.anchors, n, config, len(sets.test[1])))
        return
    cost = forget_only_cost(info.cls, len(sets.forget))
    if cost is not None:
        print(
            f"anchors: none (forget-only). On the benchmark this costs about {cost[1]:.1f} "
            f"test points at k={cost[0]}; give unlabeled in-domain images with --surrogate "
            "SPEC, or make the model forget-ready (`amnesiac attach-anchors`, "
            "`amnesiac pretrain --reserve N`)"
        )


def _release_only(
    args: argparse.Namespace, ckpt: Checkpoint, rows: RequestRows, request: Request | None
) -> int:
    """A request of reserved anchors only: the model never trained on them, so they leave its
    anchor set and the weights stay as they are."""
    left = len(rows.anchors["rows"]) if rows.anchors else 0
    print(
        f"all {len(rows.untrained)} requested images are anchors the model never trained on: "
        f"released from its anchor set ({left:,} left); the weights are unchanged"
    )
    if args.out:
        atomic_write_bytes(
            args.out, checkpoint_bytes(ckpt.model, {**ckpt.meta, "anchors": rows.anchors})
        )
        print(f"saved {args.out}")
    if request is not None:
        entry = Ledger(args.ledger).record(
            request, {"metrics": None, "forgotten": True, "steps": 0}
        )
        print(f"ledger {args.ledger}: request {entry['request_id']} recorded")
    return 0


def _page_outcomes(
    ckpt: Checkpoint,
    result: amnesiac.UnlearnResult,
    sets: RunSets,
    report: UnlearnReport,
    pred_before: torch.Tensor,
    pred_after: torch.Tensor,
) -> dict[str, Any]:
    """The request page's outputs of both models (:func:`model_outcomes`), with their D_test
    predictions from the evaluations the run made."""
    return model_outcomes(
        ckpt.model,
        result.model,
        forget=sets.f_set,
        test=sets.test,
        forget_indices=sets.forget.tolist(),
        relabel=relabel_run(report),
        test_pred_before=pred_before,
        test_pred_after=pred_after,
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """Unlearn ``--forget`` from ``--model``; print the outcome and write the outputs asked for."""
    config = method_config(args, extra)
    outs = [check_writable(p) for p in (args.out, args.report, args.forget_out) if p]
    if args.html:
        check_writable(args.html)
    data = load_data(args)
    ckpt, source = load_model(args.model, data.name)
    check_fit(ckpt, data, source)
    forget = parse_forget(args.forget, data.train_y)
    request = _ledger_request(args, data.name, forget, config.to_dict()) if args.ledger else None
    if request is not None and request.done:
        page = "" if not args.html else " (no page written: `amnesiac report REPORT.json --html "
        print(
            f"request {request.request_id} is already in {args.ledger} with its model "
            f"{args.out}; nothing to do" + (page and page + "PAGE` makes it from the run's report)")
        )
        return 0
    rows = (request and request.rows) or split_request(ckpt.meta.get("anchors"), forget.tolist())
    if not rows.forget:
        return _release_only(args, ckpt, rows, request)
    info = amnesiac.get_method(args.method)
    if distributed.active() and not info.cls.data_parallel:
        raise CLIError(
            f"under torchrun, `unlearn` runs {', '.join(data_parallel_methods())} (data-parallel "
            f"training); method {args.method!r} runs in one process: start it without torchrun"
        )
    sets = _sets(args, data, ckpt, rows, info)
    _announce(args, data, sets, info, source, config)
    t0 = time.perf_counter()
    model_sha = file_sha256(_input_path(args, data.name))
    before, test_pred = before_evaluation(
        ckpt.model, model_sha, forget=sets.f_set, retain=sets.r_eval, test=sets.test
    )
    t_before = time.perf_counter() - t0
    retain_all = sets.retain_all
    retain = (data.train_x[retain_all], data.train_y[retain_all]) if info.uses("retain") else None
    result = amnesiac.unlearn(
        ckpt.model,
        forget=sets.f_set,
        method=args.method,
        **info.inputs(retain=retain, surrogate=sets.surrogate),
        progress=not args.no_progress,
        **config.to_dict(),
    )
    t0 = time.perf_counter()
    after, test_pred_after = evaluation(
        result.model, "unlearned", forget=sets.f_set, retain=sets.r_eval, test=sets.test
    )
    t_after = time.perf_counter() - t0
    seconds = {**result.seconds, "evaluate": t_before + t_after}
    _print_outcome(args, sets, before, after, result, seconds)
    unlearned = {
        "method": args.method,
        "from": source,
        "forget_sha256": forget_sha256(sets.forget),
        "settings": result.config,
    }
    report = report_json(args, data, source, model_sha, sets, before, after, result, seconds)
    # the models' outputs for the page, before anything is written
    outcomes = (
        _page_outcomes(ckpt, result, sets, report, test_pred, test_pred_after)
        if args.html
        else None
    )
    meta = {**ckpt.meta, "unlearned": unlearned}
    if rows.anchors is not None:
        meta["anchors"] = rows.anchors
    # write every output only after everything succeeded; under torchrun every process holds
    # the same model and rank 0 writes
    if distributed.is_main():
        report = write_outputs(args, outs, meta, result, request, report)
        if args.html and outcomes is not None:
            write_html(args, report, outcomes, sets, data.classes)
    distributed.barrier()
    return 0
