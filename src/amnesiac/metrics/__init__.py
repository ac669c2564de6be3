"""Measurements of a model; never imports the methods."""

from amnesiac.metrics.accuracy import accuracy, accuracy_from_logits, predict_logits

__all__ = ["accuracy", "accuracy_from_logits", "predict_logits"]
