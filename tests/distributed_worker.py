"""One rank of the multi-process tests in ``test_distributed.py``, started by ``torchrun``.

``python -m torch.distributed.run --nproc-per-node 2 tests/distributed_worker.py MODE OUT [SEED]``
writes ``OUT/rank{RANK}.json`` with what this rank saw:

- ``train``: trains the digits CNN data-parallel; rank 0 saves the checkpoint, then every rank
  loads it and reports its hash, the hash of the model it holds in memory, the test accuracy, and
  the error of a global batch that does not split over the ranks.
- ``shadows``: trains 4 shadow models shared out over the ranks into ``OUT/cache``; reports which
  it trained itself and the hash of every model it loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

import amnesiac
from amnesiac import distributed
from amnesiac.data import load_dataset
from amnesiac.errors import InvalidSettingsError
from amnesiac.models import model_meta
from amnesiac.shadows import train_shadows

#: The recipe of both sides of the comparison (test_distributed.py trains the same in one process).
RECIPE = amnesiac.TrainRecipe(epochs=6, batch_size=64, lr=0.05, crop_padding=0, flip=False)
SHADOW_RECIPE = amnesiac.TrainRecipe(epochs=2, batch_size=64, lr=0.05, crop_padding=0, flip=False)


def state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def digits_model(seed: int = 0) -> amnesiac.ImageClassifier:
    data = load_dataset("digits")
    torch.manual_seed(seed)
    return amnesiac.create_model("cnn", in_channels=1, num_classes=10, mean=data.mean, std=data.std)


def train(out: Path, seed: int = 0) -> dict[str, object]:
    data = load_dataset("digits")
    # WORKER_DEVICE=cuda: each rank on its own GPU (tests/test_cuda.py)
    cuda = os.environ.get("WORKER_DEVICE") == "cuda"
    device = torch.device("cuda", distributed.local_rank()) if cuda else torch.device("cpu")
    model = digits_model(seed).to(device)
    recipe = dataclasses.replace(RECIPE, seed=seed)
    amnesiac.train_classifier(model, data.train_x.to(device), data.train_y.to(device), recipe)
    path = out / "ddp.safetensors"
    if distributed.is_main():
        meta = model_meta("cnn", in_channels=1, num_classes=10, mean=data.mean, std=data.std)
        amnesiac.save_checkpoint(model, path, meta)
    distributed.barrier()
    loaded = amnesiac.load_checkpoint(path).model
    acc = amnesiac.evaluate(loaded, test=(data.test_x, data.test_y))["test_acc"]
    return {
        "memory": state_hash(model),
        "file": state_hash(loaded),
        "test_acc": acc,
        "error": batch_error(),
    }


def shadows(out: Path, seed: int = 0) -> dict[str, object]:
    digits = load_dataset("digits")
    data = dataclasses.replace(digits, train_x=digits.train_x[:600], train_y=digits.train_y[:600])
    seen: list[tuple[int, bool]] = []
    got = train_shadows(
        data, "cnn", SHADOW_RECIPE, n=4, cache_dir=out / "cache", progress=False,
        on_shadow=lambda i, cached: seen.append((i, cached)),
    )  # fmt: skip
    return {"seen": seen, "loaded": [state_hash(m) for m in got.models]}


def batch_error() -> str | None:
    """The error of a global batch (65) that does not split over 2 ranks."""
    data = load_dataset("digits")
    recipe = dataclasses.replace(RECIPE, batch_size=65, epochs=1)
    try:
        amnesiac.train_classifier(digits_model(), data.train_x, data.train_y, recipe)
    except InvalidSettingsError as e:
        return str(e)
    return None


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    distributed.init()
    try:
        report = {"train": train, "shadows": shadows}[mode](out, seed)
        report.update(rank=distributed.rank(), world=distributed.world_size())
        (out / f"rank{distributed.rank()}.json").write_text(json.dumps(report))
        distributed.barrier()
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
