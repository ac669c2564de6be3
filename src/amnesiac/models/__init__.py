"""Built-in architectures, torchvision models by name, checkpoint I/O and the shipped models."""

from __future__ import annotations

from pathlib import Path

from amnesiac.errors import CheckpointError
from amnesiac.models.checkpoint import (
    Checkpoint,
    checkpoint_bytes,
    checkpoint_meta,
    load_checkpoint,
    model_meta,
    save_checkpoint,
)
from amnesiac.models.classifier import ImageClassifier, Normalize, create_model, list_archs

WEIGHTS = Path(__file__).parent / "weights"


def pretrained_path(dataset: str, *, forget_ready: bool = False) -> Path:
    """Path of the model shipped for ``dataset`` (``fashion-mnist`` or ``digits``); with
    ``forget_ready``, the one trained with anchors reserved (``fashion-mnist``: 58,000 images
    trained on, 2,000 reserved)."""
    kind = "-ready" if forget_ready else ""
    path = WEIGHTS / f"{dataset}-resnet20{kind}.safetensors"
    if not path.is_file():
        shipped = sorted(
            p.name.removesuffix(".safetensors").replace("-resnet20", "")
            for p in WEIGHTS.glob("*.safetensors")
        )
        what = "forget-ready model" if forget_ready else "model"
        raise CheckpointError(
            f"no {what} is shipped for dataset {dataset!r} (shipped: {', '.join(shipped)}); "
            "train one with `amnesiac pretrain"
            + (" --reserve N" if forget_ready else "")
            + "` and pass --model"
        )
    return path


def load_pretrained(dataset: str, *, forget_ready: bool = False) -> Checkpoint:
    """The model shipped for ``dataset``, with its metadata (training recipe, test accuracy);
    ``forget_ready``: the one that carries reserved anchors (:func:`pretrained_path`)."""
    return load_checkpoint(pretrained_path(dataset, forget_ready=forget_ready))


__all__ = [
    "Checkpoint",
    "ImageClassifier",
    "Normalize",
    "checkpoint_bytes",
    "checkpoint_meta",
    "create_model",
    "list_archs",
    "load_checkpoint",
    "load_pretrained",
    "model_meta",
    "pretrained_path",
    "save_checkpoint",
]
