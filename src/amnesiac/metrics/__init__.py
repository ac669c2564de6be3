"""Measurements of a model; never imports the methods."""

from amnesiac.metrics.accuracy import accuracy, accuracy_from_logits, predict_logits
from amnesiac.metrics.cka import linear_cka
from amnesiac.metrics.distance import output_distance
from amnesiac.metrics.lira import lira_offline, lira_summary, scaled_logit, tpr_at_fpr
from amnesiac.metrics.mia import attack_features, auc, mia_from_logits, population_mia
from amnesiac.metrics.relearn import relearn_steps

__all__ = [
    "accuracy",
    "accuracy_from_logits",
    "attack_features",
    "auc",
    "linear_cka",
    "lira_offline",
    "lira_summary",
    "mia_from_logits",
    "output_distance",
    "population_mia",
    "predict_logits",
    "relearn_steps",
    "scaled_logit",
    "tpr_at_fpr",
]
