"""``amnesiac pretrain``: train a classifier from scratch and save it (data-parallel under
torchrun)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import amnesiac
from amnesiac import distributed
from amnesiac._io import check_writable
from amnesiac._versions import software_versions
from amnesiac.cli.common import CLIError, fmt, load_data
from amnesiac.cli.flags import add_dataclass_flags, data_flags, given
from amnesiac.data import Splits
from amnesiac.data.anchors import reserve_rows, reserved_meta, trained_rows
from amnesiac.models import list_archs, model_meta
from amnesiac.training import PRETRAIN_SETUPS, TrainRecipe


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``pretrain`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pretrain",
        help="train a classifier from scratch and save it",
        parents=[data_flags()],
        epilog="Under `torchrun --nproc-per-node N -m amnesiac pretrain ...` the training is "
        "data-parallel (--batch-size is the global batch) and rank 0 writes --out.",
    )
    p.add_argument(
        "--recipe",
        default=None,
        choices=sorted(PRETRAIN_SETUPS),
        help="a named setup: its architecture and training recipe (flags given beside it "
        "override them); cifar10-resnet18 is the L2UL paper's CIFAR-10 ResNet-18",
    )
    p.add_argument(
        "--arch", default=None, help="one of " + ", ".join(list_archs()) + " (default: resnet20)"
    )
    p.add_argument("--out", required=True, help="checkpoint to write (safetensors)")
    p.add_argument(
        "--reserve",
        type=int,
        default=0,
        metavar="N",
        help="keep N training images out of training (stratified by class, drawn with --seed) "
        "and record them in the checkpoint as its anchors: a forget-ready model, whose "
        "deletion requests are held on real images it never saw (default: 0)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where to train: auto (the GPU of this process if CUDA is available, else the "
        "CPU), cpu, cuda or cuda:N (default: auto)",
    )
    p.set_defaults(func=run, _recipe_fields=add_dataclass_flags(p, TrainRecipe))
    return p


def _device(spec: str) -> torch.device:
    """The device of ``--device``."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", distributed.local_rank())
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        problem = f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N"
        raise CLIError(problem) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {spec} asks for CUDA, which this machine lacks; use cpu")
    return device


def _test_accuracy(model: torch.nn.Module, data: Splits) -> float:
    """Test accuracy in percent, each process measuring its share of the test images."""
    rows = torch.tensor(distributed.share(range(len(data.test_y))), dtype=torch.int64)
    acc = amnesiac.evaluate(model, test=(data.test_x[rows], data.test_y[rows]))["test_acc"]
    correct, total = distributed.all_reduce_sum([acc * len(rows) / 100, len(rows)])
    return 100.0 * correct / total


def run(args: argparse.Namespace) -> int:
    """Train ``--arch`` on ``--dataset`` with the recipe flags; write ``--out``."""
    out = check_writable(args.out)
    setup = PRETRAIN_SETUPS[args.recipe] if args.recipe else None
    base = setup.recipe.to_dict() if setup else {}
    recipe = TrainRecipe(**{**base, **given(args, args._recipe_fields)})
    arch = args.arch or (setup.arch if setup else "resnet20")
    device = _device(args.device)
    data = load_data(args)
    c, h, w = data.input_shape
    reserve = reserve_rows(data.train_y, args.reserve, recipe.seed) if args.reserve else None
    anchors = reserved_meta(data.name, reserve, recipe.seed) if reserve is not None else None
    rows = trained_rows(len(data.train_y), anchors)
    torch.manual_seed(recipe.seed)
    model = amnesiac.create_model(
        arch, in_channels=c, num_classes=data.num_classes, mean=data.mean, std=data.std
    ).to(device)
    processes = distributed.processes()
    on = f" on {device}" + (f", {processes} processes" if processes > 1 else "")
    print(
        f"pretraining {arch} on {data.name}: {len(rows)} train"
        + (f" ({args.reserve} reserved as anchors)" if args.reserve else "")
        + f", {len(data.test_y)} test images, {recipe.epochs} epochs{on}"
    )
    accs: list[float] = []
    t0 = time.perf_counter()

    def on_epoch(epoch: int, m: torch.nn.Module) -> dict[str, float]:
        acc = _test_accuracy(m, data)
        accs.append(acc)
        print(
            f"epoch {epoch + 1}/{recipe.epochs}: test accuracy {acc:.2f}% "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        return {"test_acc": acc}

    amnesiac.train_classifier(
        model,
        data.train_x[rows].to(device),
        data.train_y[rows].to(device),
        recipe,
        progress=True,
        on_epoch=on_epoch,
    )
    given_recipe = f"--recipe {args.recipe} " if args.recipe else ""
    meta = model_meta(
        arch,
        in_channels=c,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        input_shape=[c, h, w],
        dataset=data.name,
        classes=list(data.classes),
        recipe=recipe.to_dict(),
        test_acc=accs[-1] if accs else None,
        trained_by=f"amnesiac pretrain --dataset {data.name} {given_recipe}--arch {arch} "
        f"--epochs {recipe.epochs} --seed {recipe.seed}"
        + (f" --reserve {args.reserve}" if args.reserve else ""),
        versions=software_versions(),
        seconds=round(time.perf_counter() - t0, 1),
        processes=processes,
        device=device.type,
        **({"anchors": anchors} if anchors else {}),
    )
    if distributed.is_main():  # every process holds the same model; one writes it
        amnesiac.save_checkpoint(model, out, meta)
    distributed.barrier()  # the file is there for every process once this returns
    print(f"saved {out} (test accuracy {fmt(accs[-1] if accs else None)}%)")
    return 0
