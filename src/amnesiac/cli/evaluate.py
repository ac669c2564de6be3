"""``amnesiac evaluate``: accuracy of a model on D_f, D_r and D_test."""

from __future__ import annotations

import argparse
import json
from typing import Any

import amnesiac
from amnesiac._io import atomic_write_text, check_writable
from amnesiac.cli.common import check_fit, fmt, load_model, table
from amnesiac.cli.flags import data_flags, forget_epilog, retain_eval_size_flag
from amnesiac.data import load_dataset, parse_forget, retain_eval_indices


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="accuracy of a model on D_f, D_r and D_test",
        parents=[data_flags(), retain_eval_size_flag(0)],
        epilog=forget_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--forget", default=None, help="forget set, in one of the forms below")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print (and with ``--json`` write) the model's accuracies."""
    if args.json:
        check_writable(args.json)
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    ckpt, source = load_model(args.model, data.name)
    check_fit(ckpt, data, source)
    sets: dict[str, Any] = {"test": (data.test_x, data.test_y)}
    if args.forget:
        forget = parse_forget(args.forget, data.train_y)
        retain = retain_eval_indices(len(data.train_y), forget, args.retain_eval_size, 0)
        sets["forget"] = (data.train_x[forget], data.train_y[forget])
        sets["retain"] = (data.train_x[retain], data.train_y[retain])
    else:
        sets["retain"] = (data.train_x, data.train_y)
    metrics = amnesiac.evaluate(ckpt.model, **sets)
    rows = [[k, fmt(v)] for k, v in metrics.items()]
    print(f"{source} on {data.name}")
    print(table(rows, ["metric", "percent"]))
    if args.json:
        atomic_write_text(args.json, json.dumps(metrics, indent=2))
    return 0
