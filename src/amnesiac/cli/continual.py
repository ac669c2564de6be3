"""``amnesiac continual``: deletion requests in sequence, with a ledger."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import amnesiac
from amnesiac._io import atomic_write_bytes, atomic_write_text, check_writable
from amnesiac.cli.common import (
    MODEL_HELP,
    CLIError,
    anchors_line,
    check_fit,
    fmt,
    held_out_test,
    load_model,
    method_config,
    model_path,
    run_anchors,
    table,
)
from amnesiac.cli.flags import data_flags, no_progress_flag, retain_eval_size_flag
from amnesiac.continual import (
    plot_continual,
    resume_rounds,
    round_path,
    round_settings,
    run_continual,
)
from amnesiac.data import Splits, load_dataset
from amnesiac.data.anchors import trained_rows
from amnesiac.data.surrogate import SURROGATE_SPEC_HELP
from amnesiac.ledger import Ledger
from amnesiac.models import Checkpoint
from amnesiac.models.checkpoint import checkpoint_bytes


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``continual`` command to ``subparsers`` (method settings come as extra flags)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "continual",
        help="deletion requests in sequence, each re-solved from the original model (or "
        "chained from the previous one), with a ledger",
        description="Run the continual-unlearning scenario. Method settings are flags, as for "
        "`amnesiac unlearn`. Resumes from the ledger in --out.",
        parents=[data_flags(), retain_eval_size_flag(10000), no_progress_flag()],
    )
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--rounds", type=int, default=5, help="number of requests (default 5)")
    p.add_argument("--per-round", type=int, default=16, help="instances per request (default 16)")
    p.add_argument("--method", default="l2ul", help="a forget-only method (default l2ul)")
    p.add_argument("--preset", default=None, help="a named settings bundle, e.g. paper")
    p.add_argument("--out", required=True, help="folder for round models, ledger, JSON and plot")
    p.add_argument("--seed", type=int, default=0, help="seed of the instances drawn")
    p.add_argument(
        "--surrogate",
        default=None,
        help=f"anchors for every round: {SURROGATE_SPEC_HELP} (default: the model's own, where "
        "it is forget-ready)",
    )
    p.add_argument(
        "--no-anchors", action="store_true", help="forget without the model's own anchors"
    )
    p.add_argument(
        "--chained",
        action="store_true",
        help="start each round from the previous round's model (the paper's scenario) instead "
        "of re-solving every request so far from the original model (the default)",
    )
    p.set_defaults(func=run, takes_extra=True)
    return p


def _round_writer(
    args: argparse.Namespace,
    ledger: Ledger,
    ckpt: Checkpoint,
    source: str,
    in_path: Path,
    config: amnesiac.UnlearnConfig,
    dataset: str,
) -> Callable[[int, torch.nn.Module, dict[str, Any]], None]:
    """The ``on_round`` callback: writes the round's model, then its ledger entry."""
    out = Path(args.out)
    from_original = not args.chained

    def on_round(r: int, model: torch.nn.Module, row: dict[str, Any]) -> None:
        path = round_path(out, r)
        request = ledger.request(
            dataset=dataset,
            input_model=in_path if from_original or r == 1 else round_path(out, r - 1),
            forget_indices=row["forget_indices"],
            method=args.method,
            settings=round_settings(config, r - 1),
            output_model=path,
            preset=args.preset,
            request_id=f"round-{r}",
            from_original=from_original,
        )
        meta = {**ckpt.meta, "unlearned": {"method": args.method, "round": r, "from": source}}
        atomic_write_bytes(path, checkpoint_bytes(model, meta))
        # a re-solved round deleted every request so far, from the original model
        forget_acc = row["all_forget_acc"] if from_original else row["round_forget_acc"]
        ledger.record(
            request, {"metrics": {"after": {"forget_acc": forget_acc}}, "continual_row": row}
        )
        print(
            f"round {r}: D_f {row['round_forget_acc']:.1f}%, all forgotten so far "
            f"{row['all_forget_acc']:.1f}%, D_r {row['retain_acc']:.2f}%, "
            f"D_test {row['test_acc']:.2f}% ({row['steps']} steps, {row['seconds']:.1f} s)",
            flush=True,
        )

    return on_round


def _finish(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    before: float,
    config: amnesiac.UnlearnConfig,
    data: Splits,
    source: str,
) -> None:
    """Print the rounds' table; write the summary JSON and the plot."""
    out = Path(args.out)
    cells = [
        [
            str(r["round"]),
            fmt(r["round_forget_acc"]),
            fmt(r["all_forget_acc"]),
            fmt(r["retain_acc"]),
            fmt(r["test_acc"]),
            str(r["steps"]),
        ]
        for r in rows
    ]
    print(
        table(cells, ["round", "D_f (round) %", "D_f (all so far) %", "D_r %", "D_test %", "steps"])
    )
    print(f"D_test before the first round: {before:.2f}%")
    summary = {
        "from_original": not args.chained,
        "method": args.method,
        "settings": config.to_dict(),
        "dataset": data.name,
        "model": source,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "seed": args.seed,
        "test_acc_before": before,
        "rows": rows,
    }
    atomic_write_text(out / "continual.json", json.dumps(summary, indent=2))
    plot_continual(rows, out / "continual.png", f"{args.method}, {args.per_round} per round")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """Run (or resume) the rounds; every round's model and ledger entry land in ``--out``."""
    config = method_config(args, extra)
    if amnesiac.get_method(args.method).needs_retain:
        raise CLIError(
            f"continual runs forget-only methods; {args.method!r} needs the retained data"
        )
    if args.rounds < 1 or args.per_round < 1:
        raise CLIError(
            f"--rounds and --per-round must be >= 1, got {args.rounds}, {args.per_round}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder")
    check_writable(out / "ledger.jsonl") if out.is_dir() else check_writable(out)
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    ckpt, source = load_model(args.model, data.name)
    check_fit(ckpt, data, source)
    out.mkdir(exist_ok=True)
    ledger = Ledger(out / "ledger.jsonl")
    in_path = model_path(args.model, data.name)
    from_original = not args.chained
    start = resume_rounds(ledger, in_path, out, from_original=from_original)
    if start:
        print(f"resuming after round {len(start)} of {args.rounds} ({ledger.path})")
    print(
        f"continual {args.method}: {args.rounds} rounds x {args.per_round} instances of "
        f"{data.name} from {source}"
    )
    info = amnesiac.get_method(args.method)
    surrogate, described, spec = run_anchors(args, data, info, ckpt.meta.get("anchors"))
    test = held_out_test(data, spec)
    if described:
        n = 0 if surrogate is None else len(surrogate)
        print(anchors_line(described, n, config, len(test[1])))
    rows = run_continual(
        ckpt.model,
        data,
        rounds=args.rounds,
        per_round=args.per_round,
        method=args.method,
        config=config,
        seed=args.seed,
        retain_eval_size=args.retain_eval_size,
        progress=not args.no_progress,
        on_round=_round_writer(args, ledger, ckpt, source, in_path, config, data.name),
        start=start,
        from_original=from_original,
        test=test,
        surrogate=surrogate,
        trained=trained_rows(len(data.train_y), ckpt.meta.get("anchors")),
    )
    before = amnesiac.evaluate(ckpt.model, test=test)["test_acc"]
    _finish(args, rows, before, config, data, source)
    print(f"wrote {out / 'continual.json'}, {out / 'continual.png'} and {ledger.path}")
    return 0
