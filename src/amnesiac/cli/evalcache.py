"""The original model's evaluation, cached by model and data hash: every request from the same
model on the same sets measures "before" once (``$AMNESIAC_CACHE/evaluations``)."""

from __future__ import annotations

import json
import logging

import torch
from torch import Tensor, nn

import amnesiac
from amnesiac._io import atomic_write_text, cache_root
from amnesiac.data.anchors import images_sha256
from amnesiac.hashing import canonical_sha256
from amnesiac.metrics.accuracy import accuracy_from_logits, predict_logits

logger = logging.getLogger(__name__)

Pair = tuple[Tensor, Tensor]
#: Bump when what is cached changes meaning.
VERSION = 1


def _key(model_sha256: str, sets: dict[str, Pair]) -> str:
    parts: list[object] = ["before", VERSION, model_sha256]
    for name, (x, y) in sorted(sets.items()):
        parts += [name, images_sha256(x), y.tolist()]
    return canonical_sha256(parts)


def before_evaluation(
    model: nn.Module, model_sha256: str, *, forget: Pair, retain: Pair, test: Pair
) -> tuple[dict[str, float], Tensor]:
    """``amnesiac.evaluate(model, forget=..., retain=..., test=...)`` and the model's predicted
    classes on ``test``, from the cache where this model (by file SHA-256) was evaluated on the
    same images and labels before, else computed and cached."""
    path = (
        cache_root()
        / "evaluations"
        / f"{_key(model_sha256, {'f': forget, 'r': retain, 't': test})}.json"
    )
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            return dict(saved["metrics"]), torch.tensor(saved["test_pred"], dtype=torch.int64)
        except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged entry: recompute
            logger.warning("ignoring the damaged evaluation cache entry %s (%s)", path, e)
    metrics, pred = evaluation(model, "original", forget=forget, retain=retain, test=test)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"metrics": metrics, "test_pred": pred.tolist()}))
    return metrics, pred


def evaluation(
    model: nn.Module, name: str, *, forget: Pair, retain: Pair, test: Pair
) -> tuple[dict[str, float], Tensor]:
    """``amnesiac.evaluate(model, forget=..., retain=..., test=...)`` and the model's predicted
    classes on ``test``: one pass on ``test`` gives its accuracy and the predictions the request
    page needs.

    Raises:
        DivergenceError: The ``name`` model outputs NaN or infinite logits on D_test.
    """
    metrics = amnesiac.evaluate(model, forget=forget, retain=retain)
    logits = predict_logits(model, test[0])
    if not torch.isfinite(logits).all():
        raise amnesiac.DivergenceError(
            f"the {name} model outputs NaN or infinite logits on D_test; it is broken"
        )
    metrics["test_acc"] = accuracy_from_logits(logits, test[1])
    return metrics, logits.argmax(1).cpu()
