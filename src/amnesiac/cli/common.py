"""What the commands share: loading a model, the fit check, tables, method settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import amnesiac
from amnesiac import distributed
from amnesiac.cli.flags import add_dataclass_flags, given
from amnesiac.data import Splits, load_dataset, load_surrogate, surrogate_test_rows
from amnesiac.errors import AmnesiacError, CheckpointError
from amnesiac.methods.base import MethodInfo, accepting
from amnesiac.models import Checkpoint, load_checkpoint, pretrained_path
from amnesiac.ops.proxy import augmented_size

PROG = "amnesiac"


class CLIError(AmnesiacError):
    """A problem with the command line itself."""


#: ``--model`` values that name a shipped model instead of a file.
SHIPPED = {"shipped": False, "shipped-ready": True}
MODEL_HELP = (
    "checkpoint (default: shipped, the model shipped for --dataset; shipped-ready: the "
    "forget-ready one, trained with 2,000 images reserved as its anchors)"
)


def model_path(spec: str | None, dataset: str) -> Path:
    """The file of ``--model`` ``spec``: a path, or a shipped model (:data:`SHIPPED`)."""
    name = spec or "shipped"
    if name.split(":")[0] in SHIPPED:
        return pretrained_path(dataset, forget_ready=SHIPPED[name.split(":")[0]])
    return Path(name)


def load_model(spec: str | None, dataset: str) -> tuple[Checkpoint, str]:
    """The checkpoint ``spec`` (``None``, ``shipped`` or ``shipped-ready``: the one shipped for
    ``dataset``) and how to name it."""
    name = (spec or "shipped").split(":")[0]
    if name in SHIPPED:
        return load_checkpoint(model_path(name, dataset)), f"{name}:{dataset}"
    return load_checkpoint(spec or ""), str(spec)


def load_data(args: argparse.Namespace) -> Splits:
    """The dataset of ``--dataset``, ``--data-dir`` and ``--download``; under torchrun, with
    ``--download``, rank 0 fetches it while the other ranks wait, then they read its files."""
    first = args.download and distributed.active()
    if first and not distributed.is_main():
        distributed.barrier()
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    if first and distributed.is_main():
        distributed.barrier()
    return data


def run_anchors(
    args: argparse.Namespace, data: Splits, info: MethodInfo, anchors: dict[str, Any] | None
) -> tuple[torch.Tensor | None, str | None, str | None]:
    """The anchor images of the run, what they are, and the spec whose test rows they take:
    ``--surrogate`` where given, else the model's own anchors (after this request's release)
    for a method that takes them, unless ``--no-anchors``. ``anchors`` is the model's anchor
    metadata after the request (:func:`amnesiac.split_request`)."""
    takes = info.uses("surrogate")
    if args.surrogate:
        if not takes:
            raise CLIError(
                f"method {args.method!r} does not use --surrogate; methods that do: "
                + ", ".join(accepting("surrogate"))
            )
        images = load_surrogate(args.surrogate, data_dir=args.data_dir, download=args.download)
        return images, f"{len(images):,} images from {args.surrogate}", args.surrogate
    if not takes or args.no_anchors or not anchors:
        return None, None, None
    found = amnesiac.model_anchors(
        {"anchors": anchors},
        train_x=data.train_x,
        data_dir=args.data_dir,
        download=args.download,
    )
    if found is None:
        return None, None, None
    attached = None if found.rows is not None else found.source
    return found.images, found.description, attached


def anchors_line(described: str, n_images: int, config: amnesiac.UnlearnConfig, n_test: int) -> str:
    """The line that says what a run's anchors are (and, where the method grows a small set by
    copies of itself, to how many) and what D_test is then."""
    size = augmented_size(n_images, getattr(config, "anchored_augment_to", 0))
    grown = (
        f" (grown to {size:,} by shifted, flipped and mixed copies of them; "
        "anchored_augment_to=0 uses them as given)"
        if size > n_images
        else ""
    )
    return f"anchors: {described}{grown}; D_test: the {n_test} test images outside them"


def check_fit(ckpt: Checkpoint, data: Splits, source: str) -> None:
    """Raise :class:`CheckpointError` unless the model takes the dataset's images and classes."""
    meta = ckpt.meta
    problems = []
    if int(meta["num_classes"]) != data.num_classes:
        problems.append(
            f"model {source} has {meta['num_classes']} classes but dataset {data.name} has "
            f"{data.num_classes}"
        )
    if int(meta["in_channels"]) != data.input_shape[0]:
        problems.append(
            f"model {source} takes {meta['in_channels']} channels but dataset {data.name} has "
            f"{data.input_shape[0]}"
        )
    shape = meta.get("input_shape")
    if shape and tuple(shape) != tuple(data.input_shape):
        problems.append(
            f"model {source} was trained on images of shape {tuple(shape)}, dataset "
            f"{data.name} has {tuple(data.input_shape)}"
        )
    if problems:
        raise CheckpointError("; ".join(problems) + "; pass a model trained on this dataset")


def held_out_test(data: Splits, surrogate: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """D_test: the test split without the rows that ``surrogate`` takes as anchor images."""
    rows_taken = surrogate_test_rows(surrogate, data.name, len(data.test_y)) if surrogate else None
    if rows_taken is None:
        return data.test_x, data.test_y
    keep = torch.ones(len(data.test_y), dtype=torch.bool)
    keep[rows_taken[0] : rows_taken[1]] = False
    if not keep.any():
        raise CLIError(
            f"--surrogate {surrogate} takes every test image, leaving none for D_test; give a "
            f"range, e.g. {data.name}:test:0:{len(data.test_y) // 2}"
        )
    return data.test_x[keep], data.test_y[keep]


def table(rows: list[list[str]], header: list[str]) -> str:
    """``rows`` under ``header`` in left-aligned columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def fmt(v: float | None) -> str:
    """A percentage with two decimals, ``-`` for none."""
    return "-" if v is None else f"{v:.2f}"


def tqdm_write(text: str) -> None:
    """Print a line without breaking a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(text)


def method_parser(method: str) -> tuple[argparse.ArgumentParser, list[str]]:
    """A parser of ``method``'s settings flags, and the setting names."""
    info = amnesiac.get_method(method)
    p = argparse.ArgumentParser(add_help=False, prog=f"{PROG} unlearn", exit_on_error=False)
    group = p.add_argument_group(f"settings of method {method!r}")
    names = add_dataclass_flags(group, info.config_cls)
    return p, names


def method_config(args: argparse.Namespace, extra: list[str]) -> amnesiac.UnlearnConfig:
    """The settings of ``args.method`` from ``args.preset`` and the method flags in ``extra``."""
    parser, names = method_parser(args.method)
    try:
        margs, unknown = parser.parse_known_args(extra)
    except argparse.ArgumentError as e:
        raise CLIError(
            f"{e}; see `amnesiac unlearn --method {args.method} --help` for the settings"
        ) from None
    if unknown:
        raise CLIError(
            f"unrecognized arguments for method {args.method!r}: {' '.join(unknown)}; "
            f"see `amnesiac unlearn --method {args.method} --help`"
        )
    return amnesiac.make_config(args.method, args.preset, **given(margs, names))
