"""``amnesiac pretrain``: train a classifier from scratch and save it."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import amnesiac
from amnesiac._io import check_writable
from amnesiac._versions import software_versions
from amnesiac.cli.common import fmt
from amnesiac.cli.flags import add_dataclass_flags, data_flags, given
from amnesiac.data import load_dataset
from amnesiac.models import list_archs, model_meta
from amnesiac.training import TrainRecipe


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``pretrain`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pretrain", help="train a classifier from scratch and save it", parents=[data_flags()]
    )
    p.add_argument("--arch", default="resnet20", help="one of " + ", ".join(list_archs()))
    p.add_argument("--out", required=True, help="checkpoint to write (safetensors)")
    p.set_defaults(func=run, _recipe_fields=add_dataclass_flags(p, TrainRecipe))
    return p


def run(args: argparse.Namespace) -> int:
    """Train ``--arch`` on ``--dataset`` with the recipe flags; write ``--out``."""
    out = check_writable(args.out)
    recipe = TrainRecipe(**given(args, args._recipe_fields))
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    c, h, w = data.input_shape
    torch.manual_seed(recipe.seed)
    model = amnesiac.create_model(
        args.arch, in_channels=c, num_classes=data.num_classes, mean=data.mean, std=data.std
    )
    print(
        f"pretraining {args.arch} on {data.name}: {len(data.train_y)} train, "
        f"{len(data.test_y)} test images, {recipe.epochs} epochs"
    )
    accs: list[float] = []
    t0 = time.perf_counter()

    def on_epoch(epoch: int, m: torch.nn.Module) -> dict[str, float]:
        acc = amnesiac.evaluate(m, test=(data.test_x, data.test_y))["test_acc"]
        accs.append(acc)
        print(
            f"epoch {epoch + 1}/{recipe.epochs}: test accuracy {acc:.2f}% "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        return {"test_acc": acc}

    amnesiac.train_classifier(
        model, data.train_x, data.train_y, recipe, progress=True, on_epoch=on_epoch
    )
    meta = model_meta(
        args.arch,
        in_channels=c,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        input_shape=[c, h, w],
        dataset=data.name,
        classes=list(data.classes),
        recipe=recipe.to_dict(),
        test_acc=accs[-1] if accs else None,
        trained_by=f"amnesiac pretrain --dataset {data.name} --arch {args.arch} "
        f"--epochs {recipe.epochs} --seed {recipe.seed}",
        versions=software_versions(),
        seconds=round(time.perf_counter() - t0, 1),
    )
    amnesiac.save_checkpoint(model, out, meta)
    print(f"saved {out} (test accuracy {fmt(accs[-1] if accs else None)}%)")
    return 0
