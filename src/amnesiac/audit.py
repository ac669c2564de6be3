"""``amnesiac.audit``: the evidence that a model forgot, gathered from :mod:`amnesiac.metrics`.

Compares the unlearned model with the original one and, when given, with a model retrained
without the forget set (the reference a perfect unlearning method would match).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from amnesiac.api import Data
from amnesiac.data.tensors import as_tensors
from amnesiac.errors import InvalidSettingsError
from amnesiac.hashing import forget_sha256
from amnesiac.metrics.accuracy import accuracy_from_logits, predict_logits
from amnesiac.metrics.cka import linear_cka
from amnesiac.metrics.distance import output_distance
from amnesiac.metrics.lira import (
    lira_offline,
    lira_summary,
    roc_points,
    scaled_logit,
    score_histogram,
)
from amnesiac.metrics.mia import mia_from_logits
from amnesiac.metrics.relearn import relearn_steps
from amnesiac.ops.features import batched_features, last_linear
from amnesiac.ops.layout import INFERENCE_BATCH_SIZE
from amnesiac.shadows import Shadows


def shadow_phi(
    shadows: Shadows, x: Tensor, y: Tensor, *, batch_size: int = INFERENCE_BATCH_SIZE
) -> Tensor:
    """Every shadow model's scaled logit (:func:`amnesiac.metrics.scaled_logit`) of ``(x, y)``.

    Shape:
        returns ``(S, N)`` float64 for ``S`` shadow models and ``N`` examples.
    """
    return torch.stack(
        [scaled_logit(predict_logits(m, x, batch_size=batch_size), y) for m in shadows.models]
    )


def lira_report(
    logits: dict[str, tuple[Tensor, Tensor]],
    *,
    forget_y: Tensor,
    test_y: Tensor,
    shadow_forget: Tensor,
    shadow_test: Tensor,
    shadow_in: Tensor,
) -> dict[str, Any]:
    """Offline LiRA of D_f (positives) against D_test (negatives) for each named model.

    Args:
        logits: Per model name, its logits on D_f and on D_test.
        forget_y: D_f's labels.
        test_y: D_test's labels.
        shadow_forget: :func:`shadow_phi` of D_f, ``(S, |D_f|)``.
        shadow_test: :func:`shadow_phi` of D_test, ``(S, |D_test|)`` (no shadow trained on it).
        shadow_in: Whether each shadow trained on each D_f instance, ``(S, |D_f|)`` bool.

    Returns:
        ``shadow_models`` and, per model name, :func:`amnesiac.metrics.lira_summary` plus the
        ``forget_scores``, a histogram of the D_test scores (``test_histogram``,
        :func:`~amnesiac.metrics.lira.score_histogram`) and the ROC curve (``roc``, percent,
        :func:`~amnesiac.metrics.lira.roc_points`), for plots.
    """
    s_in = torch.cat([shadow_in.bool(), torch.zeros_like(shadow_test, dtype=torch.bool)], 1)
    s_phi = torch.cat([shadow_forget, shadow_test], 1)
    n = len(forget_y)
    out: dict[str, Any] = {"shadow_models": len(shadow_forget)}
    for name, (lf, lt) in logits.items():
        target = torch.cat([scaled_logit(lf, forget_y), scaled_logit(lt, test_y)])
        scores = lira_offline(target, s_phi, s_in)
        out[name] = {
            **lira_summary(scores[:n], scores[n:]),
            "forget_scores": scores[:n].tolist(),
            "test_histogram": score_histogram(scores[n:]),
            "roc": roc_points(scores[:n], scores[n:]),
        }
    return out


@torch.inference_mode()
def penultimate_features(
    model: nn.Module, x: Tensor, batch_size: int = INFERENCE_BATCH_SIZE
) -> Tensor | None:
    """The model's penultimate features (:func:`amnesiac.ops.penultimate_features`) in eval mode
    and batches, or ``None`` if it has none."""
    if not hasattr(model, "features") and last_linear(model) is None:
        return None
    return batched_features(model, x, batch_size)


def audit(
    model: nn.Module,
    original: nn.Module,
    *,
    forget: Data,
    retain: Data,
    test: Data,
    retrained: nn.Module | None = None,
    shadows: Shadows | None = None,
    forget_indices: Tensor | None = None,
    relearn_max_steps: int = 200,
    relearn_lr: float = 1e-3,
    seed: int = 0,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> dict[str, Any]:
    """Measure how well ``model`` forgot ``forget``, next to ``original`` (and ``retrained``).

    Args:
        model: The unlearned model.
        original: The model before unlearning.
        forget: D_f, ``(x, y)`` or a dataset.
        retain: A sample of D_r (the membership attacks' members).
        test: D_test (the attacks' non-members).
        retrained: Optional model trained without D_f: adds the distance to it and its own
            columns everywhere.
        shadows: Optional shadow models (:func:`amnesiac.shadows.train_shadows`) for LiRA; needs
            ``forget_indices`` (D_f's positions in the training set the shadows split).
        forget_indices: Indices of D_f in the training set.
        relearn_max_steps: Cap of the relearn-time measurement.
        relearn_lr: Learning rate of the relearn fine-tuning.
        seed: Seed of the attacks' subsampling and the relearn batch order.
        batch_size: Inference batch size.

    Returns:
        A JSON-ready dict: ``accuracy``, ``mia`` (population attacks), ``relearn_steps``, ``cka``
        (linear CKA of penultimate features on D_test against the original model), and, when
        available, ``lira``, ``distance`` (to the retrained model) and ``forget_sha256``
        (:func:`amnesiac.forget_sha256` of ``forget_indices``, to match the audit with its
        request). Per-model entries are
        keyed ``original``, ``unlearned``, ``retrained``.
    """
    xf, yf = as_tensors(forget, name="forget")
    xr, yr = as_tensors(retain, name="retain")
    xt, yt = as_tensors(test, name="test")
    models = {"original": original, "unlearned": model}
    if retrained is not None:
        models["retrained"] = retrained
    logits = {
        name: {
            key: predict_logits(m, x, batch_size=batch_size)
            for key, x in (("forget", xf), ("retain", xr), ("test", xt))
        }
        for name, m in models.items()
    }
    labels = {"forget": yf, "retain": yr, "test": yt}
    out: dict[str, Any] = {"sizes": {k: len(v) for k, v in labels.items()}}
    out["accuracy"] = {
        name: {f"{k}_acc": accuracy_from_logits(lg[k], labels[k]) for k in labels}
        for name, lg in logits.items()
    }
    out["mia"] = {
        name: mia_from_logits((lg["forget"], yf), (lg["retain"], yr), (lg["test"], yt), seed=seed)
        for name, lg in logits.items()
    }
    target_acc = out["accuracy"]["original"]["forget_acc"]
    out["relearn_steps"] = {
        name: relearn_steps(
            m, xf, yf, target_acc=target_acc, lr=relearn_lr, max_steps=relearn_max_steps, seed=seed
        )
        for name, m in models.items()
    }
    out["relearn_target_acc"] = target_acc
    out["relearn_max_steps"] = relearn_max_steps
    base = penultimate_features(original, xt, batch_size)
    if base is not None:
        cka: dict[str, float] = {}
        for name, m in models.items():
            f = penultimate_features(m, xt, batch_size)
            if f is not None:
                cka[name] = linear_cka(base, f)
        out["cka"] = cka
    if retrained is not None:
        ref = logits["retrained"]
        out["distance"] = {
            name: {key: output_distance(logits[name][key], ref[key]) for key in ("test", "forget")}
            for name in ("original", "unlearned")
        }
    if forget_indices is not None:
        out["forget_sha256"] = forget_sha256(torch.as_tensor(forget_indices))
    if shadows is not None:
        if forget_indices is None:
            raise InvalidSettingsError(
                "LiRA needs forget_indices: D_f's positions in the training set"
            )
        idx = torch.as_tensor(forget_indices, dtype=torch.long)
        out["lira"] = lira_report(
            {name: (lg["forget"], lg["test"]) for name, lg in logits.items()},
            forget_y=yf,
            test_y=yt,
            shadow_forget=shadow_phi(shadows, xf, yf, batch_size=batch_size),
            shadow_test=shadow_phi(shadows, xt, yt, batch_size=batch_size),
            shadow_in=shadows.members[:, idx],
        )
    return out
