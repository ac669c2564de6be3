"""Population membership inference: can an attacker still tell that the forget set was trained on?

The convention of SCRUB (Kurmanji et al., 2023), SalUn (Fan et al., 2024) and the NeurIPS 2023
machine-unlearning challenge kit: an attacker who knows the model's outputs learns, on examples
whose membership it knows, to separate members (a sample of the retained training data D_r) from
non-members (the test set D_test); it is then asked about the forget set D_f.

Reported for a forget set:

- ``member_rate``: the share of D_f the attack calls members (threshold 0.5 on its probability).
  A model that never saw D_f gives about the rate it gives test examples; the original model,
  which trained on D_f, gives about the rate it gives retained examples.
- ``auc``: the area under the ROC curve of the attack's scores, D_f (positive) against D_test
  (negative). 0.5 means D_f is indistinguishable from data the model never saw; higher means D_f
  still looks like training data.
- ``attack_auc``: the attack's own AUC on held-out D_r against D_test (how strong it is at all;
  near 0.5 means the model leaks little membership signal, and every other number is noise).

Two feature sets: ``"loss"`` (the per-example cross-entropy, SCRUB's attack) and ``"entropy"``
(confidence features: the probability of the true class, the largest probability and the
entropy of the output distribution, SalUn's kind of attack).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError

Features = Literal["loss", "entropy"]


def attack_features(logits: Tensor, labels: Tensor, kind: Features = "loss") -> np.ndarray:
    """Per-example attack features from a model's logits.

    ``"loss"``: the cross-entropy of the true label, shape ``(N, 1)``. ``"entropy"``: the
    probability of the true label, the largest probability and the entropy, ``(N, 3)``.
    """
    logits = logits.detach().double().cpu()
    labels = labels.cpu()
    if kind == "loss":
        return F.cross_entropy(logits, labels, reduction="none")[:, None].numpy()
    if kind == "entropy":
        logp = logits.log_softmax(1)
        p = logp.exp()
        true = p.gather(1, labels[:, None])
        entropy = -(p * logp).sum(1, keepdim=True)
        return torch.cat([true, p.max(1, keepdim=True).values, entropy], 1).numpy()
    raise InvalidSettingsError(f"features must be 'loss' or 'entropy', got {kind!r}")


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC of scores: the probability that a positive outranks a negative (ties count half)."""
    positive, negative = np.asarray(positive).ravel(), np.asarray(negative).ravel()
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return float(roc_auc_score(y, np.r_[positive, negative]))


def population_mia(
    member: np.ndarray,
    nonmember: np.ndarray,
    target: np.ndarray,
    *,
    seed: int = 0,
    holdout: float = 0.3,
) -> dict[str, float]:
    """Train a logistic-regression attack on members vs non-members and query it on ``target``.

    The two populations are subsampled to the same size (so a constant guess scores 0.5) and
    split into a training part and a held-out part (``holdout``) on which ``attack_auc`` is
    measured. ``auc`` compares ``target`` with the held-out non-members only, so no example the
    attack was fitted on is scored.

    Args:
        member: Features of known members (retained training data), ``(N_m, F)``.
        nonmember: Features of known non-members (test data), ``(N_n, F)``.
        target: Features of the forget set, ``(N_f, F)``.
        seed: Seed of the subsampling and split.
        holdout: Fraction of each population held out for evaluation.

    Returns:
        ``member_rate`` (percent of ``target`` called members), ``auc`` (target vs held-out
        non-members), ``attack_auc`` (held-out members vs held-out non-members).
    """
    if not 0 < holdout < 1:
        raise InvalidSettingsError(f"holdout must be in (0, 1), got {holdout}")
    member, nonmember, target = (
        np.asarray(a, dtype=np.float64) for a in (member, nonmember, target)
    )
    n = min(len(member), len(nonmember))
    n_test = round(n * holdout)
    if n - n_test < 2 or n_test < 1:
        raise InvalidSettingsError(
            f"need at least 3 members and 3 non-members to fit and check the attack, got "
            f"{len(member)} and {len(nonmember)}"
        )
    rng = np.random.default_rng(seed)
    m = member[rng.permutation(len(member))[:n]]
    nm = nonmember[rng.permutation(len(nonmember))[:n]]
    x_fit = np.r_[m[n_test:], nm[n_test:]]
    y_fit = np.r_[np.ones(n - n_test), np.zeros(n - n_test)]
    attack = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    attack.fit(x_fit, y_fit)
    score_m = attack.predict_proba(m[:n_test])[:, 1]
    score_nm = attack.predict_proba(nm[:n_test])[:, 1]
    out = {"attack_auc": auc(score_m, score_nm), "member_rate": float("nan"), "auc": float("nan")}
    if len(target):
        score_t = attack.predict_proba(target)[:, 1]
        out["member_rate"] = float((score_t >= 0.5).mean() * 100.0)
        out["auc"] = auc(score_t, score_nm)
    return out


def mia_from_logits(
    forget: tuple[Tensor, Tensor],
    retain: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    seed: int = 0,
) -> dict[str, float]:
    """Both population attacks from ``(logits, labels)`` of D_f, a D_r sample and D_test.

    Keys: ``mia_loss_member_rate``, ``mia_loss_auc``, ``mia_loss_attack_auc`` and the same three
    with ``mia_entropy_``.
    """
    out: dict[str, float] = {}
    kinds: tuple[Features, ...] = ("loss", "entropy")
    for kind in kinds:
        r = population_mia(
            attack_features(*retain, kind=kind),
            attack_features(*test, kind=kind),
            attack_features(*forget, kind=kind),
            seed=seed,
        )
        out.update({f"mia_{kind}_{k}": v for k, v in r.items()})
    return out
