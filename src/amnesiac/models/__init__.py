"""Built-in architectures, torchvision models by name, checkpoint I/O and the shipped models."""

from __future__ import annotations

from pathlib import Path

from amnesiac.errors import CheckpointError
from amnesiac.models.checkpoint import (
    Checkpoint,
    checkpoint_bytes,
    load_checkpoint,
    model_meta,
    save_checkpoint,
)
from amnesiac.models.classifier import ImageClassifier, Normalize, create_model, list_archs

WEIGHTS = Path(__file__).parent / "weights"


def pretrained_path(dataset: str) -> Path:
    """Path of the model shipped for ``dataset`` (``fashion-mnist`` or ``digits``)."""
    path = WEIGHTS / f"{dataset}-resnet20.safetensors"
    if not path.is_file():
        shipped = sorted(p.name.split("-resnet20")[0] for p in WEIGHTS.glob("*.safetensors"))
        raise CheckpointError(
            f"no model is shipped for dataset {dataset!r} (shipped: {', '.join(shipped)}); "
            "train one with `amnesiac pretrain` and pass --model"
        )
    return path


def load_pretrained(dataset: str) -> Checkpoint:
    """The model shipped for ``dataset``, with its metadata (training recipe, test accuracy)."""
    return load_checkpoint(pretrained_path(dataset))


__all__ = [
    "Checkpoint",
    "ImageClassifier",
    "Normalize",
    "checkpoint_bytes",
    "create_model",
    "list_archs",
    "load_checkpoint",
    "load_pretrained",
    "model_meta",
    "pretrained_path",
    "save_checkpoint",
]
