"""Shadow models for LiRA: classifiers trained on complementary random halves, cached.

Each shadow model is trained from scratch with a given recipe on a seeded random half of the
training set and saved as a safetensors checkpoint under a cache folder, named by a hash of what
determines it (dataset, its size and labels, architecture, recipe, seed, index). The cost is paid
once per setup; an interrupted run resumes with the shadows already saved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from amnesiac import distributed
from amnesiac._io import cache_root
from amnesiac.data.datasets import Splits
from amnesiac.errors import InvalidSettingsError
from amnesiac.models import create_model
from amnesiac.models.checkpoint import load_checkpoint, model_meta, save_checkpoint
from amnesiac.models.classifier import ImageClassifier
from amnesiac.training import TrainRecipe, train_classifier


def default_cache_dir() -> Path:
    """``$AMNESIAC_CACHE/shadows``, else ``~/.cache/amnesiac/shadows``."""
    return cache_root() / "shadows"


def shadow_membership(n: int, index: int, seed: int) -> Tensor:
    """Which of ``n`` training examples shadow model ``index`` trains on.

    Models come in pairs: model ``2j`` trains on a seeded random half and model ``2j + 1`` on
    the other half, so with an even number of models every example is left out of exactly half
    of them (LiRA needs models that did not see each example).
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + index // 2)
    member = torch.zeros(n, dtype=torch.bool)
    member[torch.randperm(n, generator=g)[: n // 2]] = True
    return member if index % 2 == 0 else ~member


def shadow_key(data: Splits, arch: str, recipe: TrainRecipe, seed: int) -> str:
    """Hash of everything that determines a set of shadow models."""
    labels = hashlib.sha256(data.train_y.numpy().tobytes()).hexdigest()
    spec = {
        "dataset": data.name,
        "n": len(data.train_y),
        "labels": labels,
        "arch": arch,
        # float32 shadows keep the keys they had before the recipe had a precision
        "recipe": {k: v for k, v in recipe.to_dict().items() if (k, v) != ("precision", "fp32")},
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Shadows:
    """Shadow models and, for each, which training examples it trained on.

    Attributes:
        models: The shadow classifiers, in eval mode.
        members: ``(S, N)`` bool, ``members[s, i]`` when shadow ``s`` trained on example ``i``.
    """

    models: list[ImageClassifier]
    members: Tensor


def train_shadows(
    data: Splits,
    arch: str,
    recipe: TrainRecipe,
    *,
    n: int = 8,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    on_shadow: Callable[[int, bool], None] | None = None,
) -> Shadows:
    """Train (or load from the cache) ``n`` shadow models on random halves of ``data.train_*``.

    Args:
        data: The dataset whose training set the target model was trained on.
        arch: Architecture name (:func:`amnesiac.create_model`).
        recipe: Training recipe (use the target model's, stored in its checkpoint metadata).
        n: Number of shadow models (at least 2 so every example has OUT models, on average half).
        seed: Seed of the halves and of the training runs.
        cache_dir: Cache folder (:func:`default_cache_dir` when ``None``); created if missing.
        progress: Show a progress bar over the shadow models.
        on_shadow: Called with ``(index, loaded_from_cache)`` after each model.

    In several processes (``torchrun``, :func:`amnesiac.distributed.init`), rank ``r`` of
    ``w`` trains models ``r, r + w, ...`` (whole models, one process each: the shadow models
    are independent), skipping those already in the cache, and ``on_shadow`` is called for
    those only; after a barrier every rank loads all ``n``. The models are the ones one
    process would train: each has its own seed. ``cache_dir`` must then be one folder that
    every rank sees.
    """
    if n < 2:
        raise InvalidSettingsError(f"LiRA needs at least 2 shadow models, got {n}")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = shadow_key(data, arch, recipe, seed)
    members = [shadow_membership(len(data.train_y), i, seed) for i in range(n)]

    def path(i: int) -> Path:
        return folder / f"{data.name}-{arch}-{key}-{i}.safetensors"

    def trained(i: int) -> ImageClassifier:
        return _train_shadow(data, arch, recipe, members[i], seed=seed, index=i, key=key,
                             path=path(i))  # fmt: skip

    if distributed.active():
        # each rank trains its share of the missing models into the shared cache, then every
        # rank loads all of them
        mine = distributed.share(range(n))
        show = progress and distributed.is_main()
        for i in tqdm(mine, desc="shadow models (rank 0's share)", unit="model", disable=not show):
            cached = path(i).is_file()
            if not cached:
                trained(i)
            if on_shadow is not None:
                on_shadow(i, cached)
        distributed.barrier()
        missing = [str(path(i)) for i in range(n) if not path(i).is_file()]
        if missing:
            raise FileNotFoundError(
                f"shadow models {', '.join(missing)} are missing after every rank trained its "
                "share: the cache folder must be one folder that every rank sees (a shared "
                "file system across machines); pass the same --cache to every rank"
            )
        return Shadows(
            models=[load_checkpoint(path(i)).model for i in range(n)],
            members=torch.stack(members),
        )
    models: list[ImageClassifier] = []
    for i in tqdm(range(n), desc="shadow models", unit="model", disable=not progress):
        cached = path(i).is_file()
        models.append(load_checkpoint(path(i)).model if cached else trained(i))
        if on_shadow is not None:
            on_shadow(i, cached)
    return Shadows(models=models, members=torch.stack(members))


def _train_shadow(
    data: Splits,
    arch: str,
    recipe: TrainRecipe,
    member: Tensor,
    *,
    seed: int,
    index: int,
    key: str,
    path: Path,
) -> ImageClassifier:
    """Train shadow model ``index`` in this process alone and save it atomically to ``path``."""
    c = data.input_shape[0]
    torch.manual_seed(seed * 1_000_003 + index)
    model = create_model(
        arch, in_channels=c, num_classes=data.num_classes, mean=data.mean, std=data.std
    )
    r = TrainRecipe(**{**recipe.to_dict(), "seed": seed * 1_000_003 + index})
    train_classifier(model, data.train_x[member], data.train_y[member], r, distributed=False)
    meta = model_meta(
        arch,
        in_channels=c,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        input_shape=list(data.input_shape),
        dataset=data.name,
        recipe=r.to_dict(),
        shadow={"key": key, "index": index, "seed": seed},
    )
    save_checkpoint(model, path, meta)  # atomic: a killed run leaves no partial model
    return model.eval()
