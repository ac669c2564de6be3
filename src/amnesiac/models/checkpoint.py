"""Checkpoint I/O: weights plus metadata in safetensors, so loading never executes code."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from amnesiac._io import atomic_write_bytes
from amnesiac.errors import AmnesiacError, CheckpointError
from amnesiac.models.classifier import ImageClassifier, create_model

FORMAT = "amnesiac/1"
_REQUIRED = ("arch", "in_channels", "num_classes", "mean", "std")


@dataclass
class Checkpoint:
    """A model and the metadata saved with it.

    Attributes:
        model: The classifier, in eval mode, on the CPU.
        meta: ``arch``, ``in_channels``, ``num_classes``, ``input_shape``, ``mean``, ``std``,
            ``dataset``, ``classes``, ``recipe`` and whatever else was saved.
    """

    model: ImageClassifier
    meta: dict[str, Any] = field(default_factory=dict)


def checkpoint_bytes(model: nn.Module, meta: dict[str, Any]) -> bytes:
    """Serialize ``model``'s state dict and ``meta`` to safetensors bytes."""
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint metadata lacks {missing}; pass them in meta")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {**meta, "format": FORMAT}
    return st_save(tensors, metadata={"amnesiac": json.dumps(meta, sort_keys=True)})


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict[str, Any]) -> None:
    """Save ``model`` and ``meta`` to ``path`` atomically, in safetensors format.

    Args:
        model: An :class:`ImageClassifier` (or any module whose state dict fits ``meta['arch']``).
        path: Output file; its folder must exist.
        meta: At least ``arch``, ``in_channels``, ``num_classes``, ``mean`` and ``std``;
            JSON-serializable.
    """
    atomic_write_bytes(path, checkpoint_bytes(model, meta))


def _looks_like_safetensors(raw: bytes) -> bool:
    """8-byte little-endian header length, then a JSON object that fits in the file."""
    if len(raw) < 10:
        return False
    n = int.from_bytes(raw[:8], "little")
    return 8 + n <= len(raw) and raw[8:9] == b"{"


def _refuse_pickle(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a pickled PyTorch file, not an amnesiac checkpoint. Pickles can execute code "
        "when loaded, so amnesiac does not load them; save the model with "
        "amnesiac.save_checkpoint (safetensors) instead"
    )


def _read(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its amnesiac metadata, checked; never executes code."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    raw = path.read_bytes()
    if not _looks_like_safetensors(raw):
        if raw[:4] == b"PK\x03\x04" or (raw[:1] == b"\x80" and raw[1:2] in b"\x02\x03\x04\x05"):
            raise _refuse_pickle(path)
        raise CheckpointError(
            f"{path} is not a safetensors checkpoint (unrecognized header); save models with "
            "amnesiac.save_checkpoint"
        )
    try:
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({e})") from None
    try:
        meta = json.loads(header.get("__metadata__", {})["amnesiac"])
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError):
        raise CheckpointError(
            f"{path} is a safetensors file without amnesiac metadata; save it with "
            "amnesiac.save_checkpoint"
        ) from None
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {missing}")
    return raw, meta


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint, read from its header without loading the weights.

    Raises:
        CheckpointError: As :func:`load_checkpoint`, for the file and its metadata.
    """
    return _read(Path(path))[1]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`. Never executes code.

    Raises:
        CheckpointError: The file is missing, not safetensors (pickles are refused), lacks
            amnesiac metadata, does not fit its architecture, or holds NaN/inf weights.
    """
    path = Path(path)
    raw, meta = _read(path)
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({e})") from None
    try:
        model = create_model(
            meta["arch"],
            in_channels=int(meta["in_channels"]),
            num_classes=int(meta["num_classes"]),
            mean=meta["mean"],
            std=meta["std"],
        )
    except AmnesiacError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(
            f"{path}: weights do not fit architecture {meta['arch']!r}: {detail}"
        ) from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: weights contain NaN or inf in {bad[:3]}")
    model.eval()
    return Checkpoint(model=model, meta=meta)


def model_meta(
    arch: str,
    *,
    in_channels: int,
    num_classes: int,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    **extra: Any,
) -> dict[str, Any]:
    """Build the metadata dict :func:`save_checkpoint` expects."""
    meta: dict[str, Any] = {
        "arch": arch,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }
    for k, v in extra.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        meta[k] = v
    return meta
