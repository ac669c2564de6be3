"""A model's anchor set: real, unlabeled, in-domain images it was never trained on.

Such images are what protects everything else while a model forgets (issue 26): a model that
carries them is *forget-ready*. The set is recorded in the checkpoint's metadata under
``"anchors"``, in one of two forms:

- **reserved**: rows of the model's own training split kept out of training
  (``amnesiac pretrain --reserve N``; :func:`reserve_rows` draws them). The metadata holds the
  rows, their :func:`~amnesiac.hashing.forget_sha256` and the rows that deletion requests have
  released since (they were never trained on, so releasing them is all a request has to do).
- **attached**: a source spec given to ``amnesiac attach-anchors`` (a folder of image files or
  ``DATASET:test[:START:STOP]``), with the count, shape and SHA-256 of the images as they were
  read, so a source that changed since is refused.

:func:`model_anchors` loads them back; :func:`split_request` tells what a deletion request
means for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from amnesiac.data.forget import parse_forget
from amnesiac.errors import AnchorError, InvalidSettingsError
from amnesiac.hashing import forget_sha256

__all__ = [
    "AnchorError",
    "Anchors",
    "RequestRows",
    "anchors_from_spec",
    "attached_meta",
    "check_anchor_images",
    "images_sha256",
    "model_anchors",
    "not_retained",
    "random_rows",
    "reserve_rows",
    "reserved_meta",
    "shared_images",
    "split_request",
    "trained_rows",
]


@dataclass(frozen=True, eq=False)
class Anchors:
    """Anchor images ready for ``amnesiac.unlearn(..., surrogate=anchors.images)``.

    Attributes:
        images: ``(N, C, H, W)`` in [0, 1].
        description: What they are, for a person ("2,000 reserved images").
        source: The spec they were read from (reserved: ``DATASET:train``).
        rows: The training rows they are (reserved sets), else ``None``.
    """

    images: Tensor
    description: str
    source: str
    rows: Tensor | None = None


def reserve_rows(labels: Tensor, n: int, seed: int) -> Tensor:
    """``n`` training rows to keep out of training, stratified by class and seeded, sorted.

    Each class gets its share of ``n`` in proportion to its size (largest remainders first,
    ties to the smaller class index), drawn with ``torch.randperm`` from a generator seeded by
    ``seed``.

    Raises:
        InvalidSettingsError: ``n`` is negative or leaves no row of some class to train on.

    Example:
        >>> import torch
        >>> y = torch.tensor([0] * 6 + [1] * 4)
        >>> rows = reserve_rows(y, 5, seed=0)
        >>> len(rows), int((y[rows] == 0).sum()), int((y[rows] == 1).sum())
        (5, 3, 2)
    """
    total = len(labels)
    if n < 0 or n >= total:
        raise InvalidSettingsError(
            f"cannot reserve {n} of {total} training images; reserve between 0 and {total - 1}"
        )
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    share = exact.floor().long()
    order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - share[i]).item(), i))
    for i in order[: n - int(share.sum())]:
        share[i] += 1
    short = [int(c) for c, s, k in zip(classes, share, counts, strict=True) if s >= k]
    if short:
        raise InvalidSettingsError(
            f"reserving {n} of {total} images would leave classes {short} nothing to train on; "
            "reserve fewer"
        )
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c, s in zip(classes, share, strict=True):
        members = (labels == c).nonzero().squeeze(1)
        picked.append(members[torch.randperm(len(members), generator=g)[: int(s)]])
    return torch.cat(picked).sort().values


def trained_rows(n_train: int, anchors_meta: dict[str, Any] | None) -> Tensor:
    """The training rows a model was trained on: all of them, less its reserved anchors
    (released ones included: they were never trained on either)."""
    keep = torch.ones(n_train, dtype=torch.bool)
    if anchors_meta and anchors_meta.get("kind") == "reserved":
        untrained = anchors_meta["rows"] + anchors_meta.get("released", [])
        keep[torch.tensor(untrained, dtype=torch.int64)] = False
    return keep.nonzero().squeeze(1)


def random_rows(labels: Tensor, k: int, seed: int, pool: Tensor | None = None) -> Tensor:
    """``random:k:seed`` drawn from the rows ``pool`` (default: all rows of ``labels``), as row
    numbers of ``labels``: how the benchmark and the continual rounds draw forget sets from
    the rows a model was trained on (a forget-ready model's reserved anchors are not).

    Example:
        >>> y = torch.arange(10) % 2
        >>> random_rows(y, 3, 0).tolist() == parse_forget("random:3:0", y).tolist()
        True
        >>> set(random_rows(y, 3, 0, pool=torch.tensor([1, 3, 5, 7])).tolist()) <= {1, 3, 5, 7}
        True
    """
    if pool is None:
        return parse_forget(f"random:{k}:{seed}", labels)
    return pool[parse_forget(f"random:{k}:{seed}", labels[pool])]


def not_retained(n: int, forget: Tensor, trained: Tensor) -> Tensor:
    """The rows left out of D_r: the forget rows and every row the model never trained on
    (a forget-ready model's reserved anchors), of ``n`` training rows, sorted and distinct.

    Example:
        >>> not_retained(6, torch.tensor([4]), torch.tensor([0, 1, 2, 4])).tolist()
        [3, 4, 5]
    """
    keep = torch.zeros(n, dtype=torch.bool)
    keep[trained] = True
    keep[forget] = False
    return (~keep).nonzero().squeeze(1)


def reserved_meta(dataset: str, rows: Tensor, seed: int) -> dict[str, Any]:
    """The checkpoint metadata of a reserved anchor set."""
    values = [int(r) for r in rows]
    return {
        "kind": "reserved",
        "dataset": dataset,
        "rows": values,
        "rows_sha256": forget_sha256(values),
        "seed": seed,
        "released": [],
    }


def images_sha256(images: Tensor) -> str:
    """SHA-256 of images as float32 bytes in ``(N, C, H, W)`` order: one hash of an image set."""
    return hashlib.sha256(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def shared_images(images: Tensor, others: Tensor) -> list[int]:
    """Positions in ``images`` of the images that also occur, bit for bit, in ``others``.

    Example:
        >>> x = torch.rand(4, 1, 2, 2)
        >>> shared_images(x, x[[2, 0]])
        [0, 2]
    """

    def digests(t: Tensor) -> list[bytes]:
        flat = t.detach().cpu().float().contiguous().reshape(len(t), -1).numpy()
        return [hashlib.sha256(row.tobytes()).digest() for row in flat]

    seen = set(digests(others))
    return [i for i, d in enumerate(digests(images)) if d in seen]


def attached_meta(source: str, images: Tensor) -> dict[str, Any]:
    """The checkpoint metadata of anchors attached from ``source``."""
    return {
        "kind": "attached",
        "source": source,
        "count": len(images),
        "shape": [int(s) for s in images.shape[1:]],
        "images_sha256": images_sha256(images),
    }


def check_anchor_images(images: Tensor, meta: dict[str, Any], source: str) -> None:
    """Refuse anchor images that a model with checkpoint metadata ``meta`` cannot take.

    Raises:
        AnchorError: No images, or a shape or channel count other than the model's.
    """
    if len(images) == 0:
        raise AnchorError(f"anchor source {source} holds no images; give at least one")
    shape = tuple(int(s) for s in images.shape[1:])
    want = meta.get("input_shape")
    channels = int(meta["in_channels"])
    if shape[0] != channels:
        raise AnchorError(
            f"anchor images from {source} have {shape[0]} channels but the model takes "
            f"{channels}; give images of the model's own domain"
        )
    if want and tuple(want) != shape:
        raise AnchorError(
            f"anchor images from {source} have shape {shape} but the model takes "
            f"{tuple(want)}; resize them to the model's input first"
        )


def anchors_from_spec(
    spec: str, meta: dict[str, Any], *, data_dir: str | Path | None = None, download: bool = False
) -> tuple[Tensor, dict[str, Any]]:
    """Read and check the anchors of ``spec`` for a model with metadata ``meta``; returns the
    images and the metadata that makes the model forget-ready with them.

    Raises:
        AnchorError: The images do not fit the model.
        InvalidSettingsError: ``spec`` is not a readable source, or names a training split
            (which the model was trained on; a reserve is made by ``pretrain --reserve``).
    """
    from amnesiac.data.surrogate import load_surrogate

    images = load_surrogate(spec, data_dir=data_dir, download=download)
    check_anchor_images(images, meta, spec)
    return images, attached_meta(spec, images)


def model_anchors(
    meta: dict[str, Any],
    *,
    train_x: Tensor | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> Anchors | None:
    """The anchors a checkpoint's metadata ``meta`` carries, loaded; ``None`` if it has none.

    Args:
        meta: The checkpoint's metadata (:attr:`amnesiac.Checkpoint.meta`).
        train_x: The training images of the model's dataset (reserved sets read their rows
            from it).
        data_dir, download: Where attached ``DATASET:test`` sources are found.

    Raises:
        AnchorError: The set is empty (every reserved image was released by requests), a
            reserved set without ``train_x``, or attached images that changed since.
    """
    record = meta.get("anchors")
    if not record:
        return None
    if record.get("kind") == "reserved":
        rows = torch.tensor(record["rows"], dtype=torch.int64)
        if len(rows) == 0:
            raise AnchorError(
                "the model's reserved anchor set is empty: deletion requests released all "
                f"{len(record['released'])} of its images; attach new ones with "
                "`amnesiac attach-anchors`, or pass --no-anchors to forget without anchors"
            )
        if train_x is None:
            raise AnchorError(
                f"the model's anchors are {len(rows)} reserved rows of {record['dataset']}'s "
                "training split; pass that split's images"
            )
        if forget_sha256(rows) != record["rows_sha256"]:
            raise AnchorError("the model's reserved rows do not match their recorded hash")
        if int(rows.max()) >= len(train_x):
            raise AnchorError(
                f"the model's reserved rows reach {int(rows.max())}, past the {len(train_x)} "
                "training images given; load the dataset the model was trained on"
            )
        return Anchors(
            train_x[rows],
            f"{len(rows):,} reserved images",
            f"{record['dataset']}:train",
            rows,
        )
    source = str(record["source"])
    from amnesiac.data.surrogate import load_surrogate

    images = load_surrogate(source, data_dir=data_dir, download=download)
    if images_sha256(images) != record["images_sha256"]:
        raise AnchorError(
            f"the anchor images at {source} changed since they were attached "
            f"({len(images)} images now, {record['count']} then); attach them again with "
            "`amnesiac attach-anchors`"
        )
    return Anchors(images, f"{len(images):,} attached images", source)


@dataclass(frozen=True)
class RequestRows:
    """What a deletion request means for a model with anchors (:func:`split_request`).

    Attributes:
        forget: The requested rows the model was trained on: what the run must forget.
        released: The reserved rows this request removes from the anchor set.
        untrained: Every requested row the model never trained on (released by this request
            or an earlier one); nothing is to be done for them beyond the release.
        anchors: The anchor metadata the model after the request carries.
    """

    forget: list[int]
    released: list[int]
    untrained: list[int]
    anchors: dict[str, Any] | None


def split_request(anchors_meta: dict[str, Any] | None, requested: Iterable[int]) -> RequestRows:
    """Split a deletion request on a model with anchor metadata ``anchors_meta``.

    Reserved rows were never trained on, so a request that names them removes them from the
    anchor set and has nothing else to do for them; the rest is unlearned as usual.

    Example:
        >>> meta = reserved_meta("digits", torch.tensor([3, 5, 9]), seed=0)
        >>> rows = split_request(meta, [7, 5])
        >>> rows.forget, rows.released, rows.anchors["rows"], rows.anchors["released"]
        ([7], [5], [3, 9], [5])
    """
    asked = sorted({int(i) for i in requested})
    if not anchors_meta or anchors_meta.get("kind") != "reserved":
        return RequestRows(asked, [], [], anchors_meta)
    reserved, before = set(anchors_meta["rows"]), set(anchors_meta.get("released", []))
    released = [i for i in asked if i in reserved]
    untrained = [i for i in asked if i in reserved or i in before]
    forget = [i for i in asked if i not in reserved and i not in before]
    if not released:
        return RequestRows(forget, [], untrained, anchors_meta)
    rows = [r for r in anchors_meta["rows"] if r not in set(released)]
    after = {
        **anchors_meta,
        "rows": rows,
        "rows_sha256": forget_sha256(rows),
        "released": sorted(before | set(released)),
    }
    return RequestRows(forget, released, untrained, after)
