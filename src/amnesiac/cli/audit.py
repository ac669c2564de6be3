"""``amnesiac audit``: evidence that a model forgot."""

from __future__ import annotations

import argparse
import json
from typing import Any

import amnesiac
from amnesiac import distributed
from amnesiac._io import atomic_write_text, check_writable
from amnesiac.cli.common import CLIError, check_fit, fmt, load_data, load_model, table
from amnesiac.cli.flags import data_flags, forget_epilog, no_progress_flag, retain_eval_size_flag
from amnesiac.data import Splits, parse_forget, retain_eval_indices
from amnesiac.models import Checkpoint, load_checkpoint
from amnesiac.shadows import Shadows, default_cache_dir, train_shadows
from amnesiac.training import TrainRecipe


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` command to ``subparsers``."""
    members = "members sample for the population attacks (seeded subset of D_r; 0: all)"
    p: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="evidence that a model forgot: membership attacks, distance, relearn, CKA",
        parents=[data_flags(), retain_eval_size_flag(10000, members), no_progress_flag()],
        epilog=forget_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="the unlearned checkpoint")
    p.add_argument(
        "--original", default=None, help="the model before unlearning (default: shipped)"
    )
    p.add_argument("--retrained", default=None, help="a model retrained without D_f (optional)")
    p.add_argument("--forget", required=True, help="forget set, in one of the forms below")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument(
        "--shadows",
        type=int,
        default=8,
        help="shadow models for LiRA, trained once with the original's recipe and cached "
        "(0: skip LiRA; default 8); under torchrun each rank trains its share of them, then "
        "rank 0 audits",
    )
    p.add_argument("--cache", default=str(default_cache_dir()), help="shadow-model cache folder")
    p.add_argument("--relearn-max-steps", type=int, default=200, help="cap of the relearn time")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks and samples")
    p.set_defaults(func=run)
    return p


def _shadows(
    args: argparse.Namespace, original: Checkpoint, o_src: str, data: Splits
) -> Shadows | None:
    """The LiRA shadow models (trained like the original, cached), or ``None`` without LiRA."""
    if not args.shadows:
        return None
    meta = original.meta
    if "recipe" not in meta:
        raise CLIError(
            f"{o_src} has no training recipe in its metadata, so shadow models cannot be "
            "trained like it; pass --shadows 0 to skip LiRA"
        )
    recipe = TrainRecipe(**meta["recipe"])
    ranks = f", shared out over {distributed.processes()} ranks" if distributed.active() else ""
    print(f"LiRA: {args.shadows} shadow models ({meta['arch']}, cached under {args.cache}{ranks})")
    return train_shadows(
        data,
        meta["arch"],
        recipe,
        n=args.shadows,
        seed=args.seed,
        cache_dir=args.cache,
        progress=not args.no_progress,
    )


def _print_result(result: dict[str, Any]) -> None:
    names = list(result["accuracy"])
    rows = []
    for key, label in (("forget_acc", "D_f accuracy %"), ("test_acc", "D_test accuracy %")):
        rows.append([label, *(fmt(result["accuracy"][n][key]) for n in names)])
    for key, label in (
        ("mia_loss_member_rate", "MIA: D_f called members %"),
        ("mia_loss_auc", "MIA: AUC D_f vs D_test"),
        ("mia_entropy_auc", "MIA (entropy): AUC"),
    ):
        rows.append([label, *(f"{result['mia'][n][key]:.3f}" for n in names)])
    if "lira" in result:
        for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
            rows.append([f"LiRA {key}", *(f"{result['lira'][n][key]:.3f}" for n in names)])
    rows.append(["relearn steps", *(str(result["relearn_steps"][n]) for n in names)])
    if "cka" in result:
        rows.append(
            ["CKA vs original", *(f"{result['cka'].get(n, float('nan')):.4f}" for n in names)]
        )
    print(table(rows, ["measure", *names]))
    if "distance" in result:
        d = result["distance"]["unlearned"]
        print(
            f"unlearned vs retrained: agreement {d['test']['agreement']:.2f}% on D_test, "
            f"{d['forget']['agreement']:.2f}% on D_f; JS {d['test']['js']:.4f} / "
            f"{d['forget']['js']:.4f} nats"
        )


def run(args: argparse.Namespace) -> int:
    """Audit ``--model`` against ``--original`` (see :func:`amnesiac.audit`); write ``--out``."""
    out = check_writable(args.out)
    if args.shadows == 1 or args.shadows < 0:
        raise CLIError(f"--shadows must be 0 (no LiRA) or at least 2, got {args.shadows}")
    data = load_data(args)
    original, o_src = load_model(args.original, data.name)
    check_fit(original, data, o_src)
    unlearned = load_checkpoint(args.model)
    check_fit(unlearned, data, args.model)
    retrained = None
    if args.retrained:
        retrained = load_checkpoint(args.retrained)
        check_fit(retrained, data, args.retrained)
    forget = parse_forget(args.forget, data.train_y)
    retain = retain_eval_indices(len(data.train_y), forget, args.retain_eval_size, args.seed)
    shadows = _shadows(args, original, o_src, data)
    if not distributed.is_main():  # under torchrun the ranks share out the shadow models only
        return 0
    result = amnesiac.audit(
        unlearned.model,
        original.model,
        forget=(data.train_x[forget], data.train_y[forget]),
        retain=(data.train_x[retain], data.train_y[retain]),
        test=(data.test_x, data.test_y),
        retrained=retrained.model if retrained else None,
        shadows=shadows,
        forget_indices=forget,
        relearn_max_steps=args.relearn_max_steps,
        seed=args.seed,
    )
    _print_result(result)
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0
