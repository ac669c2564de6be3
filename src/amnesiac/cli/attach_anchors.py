"""``amnesiac attach-anchors``: make a model trained elsewhere forget-ready by recording where
its anchors are (unlabeled in-domain images it never trained on)."""

from __future__ import annotations

import argparse
from typing import Any

from amnesiac._io import atomic_write_bytes, check_writable
from amnesiac.cli.common import MODEL_HELP, SHIPPED, CLIError, load_model
from amnesiac.data.anchors import anchors_from_spec
from amnesiac.data.surrogate import SURROGATE_SPEC_HELP
from amnesiac.models.checkpoint import checkpoint_bytes


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``attach-anchors`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "attach-anchors",
        help="make a model forget-ready: record its anchor images in the checkpoint",
        description="Record where a model's anchors are: real, unlabeled images of its own "
        "domain that it was never trained on (a validation split, recent inputs). `unlearn`, "
        "`continual` and `bench` then hold every deletion request on them, which keeps the "
        "rest of the model far better than forgetting without them. The images are checked "
        "against the model's input shape and their SHA-256 is recorded, so a source that "
        "changes later is refused.",
    )
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument(
        "--dataset",
        default=None,
        help="the dataset of a shipped --model (default: the one in the model's metadata)",
    )
    p.add_argument("--anchors", required=True, help=SURROGATE_SPEC_HELP)
    p.add_argument("--out", required=True, help="the forget-ready checkpoint to write")
    p.add_argument("--data-dir", default=None, help="folder to look for a named dataset in first")
    p.add_argument("--download", action="store_true", help="download a named dataset if not found")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Check ``--anchors`` against ``--model`` and write ``--out`` with them recorded."""
    out = check_writable(args.out)
    if args.model.split(":")[0] in SHIPPED and not args.dataset:
        raise CLIError(f"--model {args.model} needs --dataset to say which shipped model")
    ckpt, source = load_model(args.model, args.dataset or "")
    images, record = anchors_from_spec(
        args.anchors, ckpt.meta, data_dir=args.data_dir, download=args.download
    )
    before = ckpt.meta.get("anchors")
    atomic_write_bytes(out, checkpoint_bytes(ckpt.model, {**ckpt.meta, "anchors": record}))
    replaced = f" (replacing its {before['kind']} anchors)" if before else ""
    print(
        f"{source}: {len(images):,} anchor images from {args.anchors}, shape "
        f"{tuple(images.shape[1:])}{replaced}; saved the forget-ready model {out}"
    )
    return 0
