"""Per-example membership inference with the likelihood-ratio attack, offline variant.

LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022)
compares a target model's confidence on an example with the confidences of shadow models that
were *not* trained on it. The confidence is the scaled logit ``phi = log(p_y / (1 - p_y))`` of the
example's label, which is close to Gaussian across models. The offline attack fits a Gaussian to
the OUT shadows' ``phi`` per example and scores the target's ``phi`` by how far above it lies: a
member (or an example the model still remembers) scores high, an example the model never saw
scores like a draw from the OUT distribution. With few shadow models the paper recommends one
variance shared by all examples (``fixed_variance=True``).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_curve
from torch import Tensor
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError
from amnesiac.metrics.mia import auc


def scaled_logit(logits: Tensor, labels: Tensor) -> Tensor:
    """``log(p_y / (1 - p_y))`` of each example's label, computed stably from logits.

    Equals ``z_y - logsumexp_{j != y} z_j``.

    Shape:
        ``logits``: ``(N, C)``; ``labels``: ``(N,)``; returns ``(N,)`` float64.
    """
    z = logits.double()
    true = z.gather(1, labels[:, None].to(z.device)).squeeze(1)
    others = z.masked_fill(F.one_hot(labels.to(z.device), z.shape[1]).bool(), float("-inf"))
    return true - others.logsumexp(1)


def lira_offline(
    target: Tensor, shadow: Tensor, shadow_in: Tensor, *, fixed_variance: bool = True
) -> Tensor:
    """Offline LiRA score of each example: ``(phi_target - mu_out) / sigma_out``.

    Higher means more likely a member. The score is monotone in the paper's one-sided Gaussian
    likelihood, so ROC curves are the same; it does not saturate at 1 as the probability does.

    Args:
        target: The target model's ``phi`` per example, ``(N,)``.
        shadow: Every shadow model's ``phi`` per example, ``(S, N)``.
        shadow_in: Whether each shadow model trained on each example, ``(S, N)`` bool.
        fixed_variance: One standard deviation for all examples (pooled over the OUT scores
            around their per-example means) instead of one per example.

    Raises:
        ValueError: An example has no OUT shadow model (or fewer than two without
            ``fixed_variance``).
    """
    if shadow.shape != shadow_in.shape or shadow.shape[1:] != target.shape:
        raise InvalidSettingsError(
            f"shapes do not fit: target {tuple(target.shape)}, shadow {tuple(shadow.shape)}, "
            f"shadow_in {tuple(shadow_in.shape)}"
        )
    out = ~shadow_in.bool()
    n_out = out.sum(0)
    need = 1 if fixed_variance else 2
    if (n_out < need).any() or (n_out - 1).sum() < 1:
        raise InvalidSettingsError(
            f"{int((n_out < need).sum())} examples have fewer than {need} shadow models that did "
            "not train on them; train more shadow models"
        )
    s = shadow.double()
    mu = (s * out).sum(0) / n_out
    dev2 = ((s - mu) ** 2) * out
    if fixed_variance:
        sigma = (dev2.sum() / (n_out - 1).sum()).sqrt().expand_as(mu)
    else:
        sigma = (dev2.sum(0) / (n_out - 1).clamp_min(1)).sqrt()
    return (target.double() - mu) / sigma.clamp_min(1e-12)


def tpr_at_fpr(positive: np.ndarray, negative: np.ndarray, fpr: float) -> float:
    """Highest true-positive rate (percent) at a false-positive rate of at most ``fpr``."""
    positive, negative = np.asarray(positive).ravel(), np.asarray(negative).ravel()
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    fprs, tprs, _ = roc_curve(y, np.r_[positive, negative])
    ok = fprs <= fpr
    return float(tprs[ok].max() * 100.0) if ok.any() else 0.0


def lira_summary(positive: Tensor, negative: Tensor) -> dict[str, float]:
    """AUC and TPR at 1% and 0.1% FPR of LiRA scores, positives (D_f) against negatives (D_test)."""
    p, n = positive.double().cpu().numpy(), negative.double().cpu().numpy()
    return {
        "auc": auc(p, n),
        "tpr_at_1pct_fpr": tpr_at_fpr(p, n, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(p, n, 0.001),
        "mean_score": float(torch.as_tensor(p).mean()) if len(p) else float("nan"),
    }


def roc_points(positive: Tensor, negative: Tensor) -> dict[str, list[float]]:
    """The ROC curve of scores, positives (D_f) against negatives (D_test), as percent.

    Only the corners of the curve are kept (scikit-learn's ``drop_intermediate``), so it has
    at most about twice as many points as there are positives: small enough for a JSON file,
    and exact (the curve drawn through them is the full one).

    Example:
        >>> roc_points(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]))
        {'fpr': [0.0, 0.0, 0.0, 100.0], 'tpr': [0.0, 50.0, 100.0, 100.0]}
    """
    p, n = positive.double().cpu().numpy(), negative.double().cpu().numpy()
    if len(p) == 0 or len(n) == 0:
        return {"fpr": [], "tpr": []}
    y = np.r_[np.ones(len(p)), np.zeros(len(n))]
    fprs, tprs, _ = roc_curve(y, np.r_[p, n], drop_intermediate=True)
    return {
        "fpr": [round(float(v) * 100.0, 6) for v in fprs],
        "tpr": [round(float(v) * 100.0, 6) for v in tprs],
    }


def score_histogram(scores: Tensor, bins: int = 40) -> dict[str, list[float]]:
    """Counts of ``scores`` in ``bins`` equal bins between their smallest and largest value.

    Returns ``{"edges": [...], "counts": [...]}`` (``bins + 1`` edges); empty lists for no
    scores. Used for D_test's LiRA scores, which are too many to store one by one.

    Example:
        >>> score_histogram(torch.tensor([0.0, 1.0, 1.0, 2.0]), bins=2)
        {'edges': [0.0, 1.0, 2.0], 'counts': [1, 3]}
    """
    s = scores.double().cpu().numpy()
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return {"edges": [], "counts": []}
    lo, hi = float(s.min()), float(s.max())
    counts, edges = np.histogram(s, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


__all__ = [
    "lira_offline",
    "lira_summary",
    "roc_points",
    "scaled_logit",
    "score_histogram",
    "tpr_at_fpr",
]
