"""Shared fixtures: scikit-learn digits and a small model trained on them in seconds."""

from __future__ import annotations

import pytest
import torch

import amnesiac
from amnesiac.data import Splits, load_dataset
from amnesiac.models import ImageClassifier, create_model


@pytest.fixture(scope="session")
def digits() -> Splits:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_model(digits: Splits) -> ImageClassifier:
    """A small BatchNorm CNN trained on digits for a few epochs (about 95% test accuracy)."""
    torch.manual_seed(0)
    model = create_model("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std)
    recipe = amnesiac.TrainRecipe(epochs=6, batch_size=64, lr=0.05, crop_padding=0, flip=False)
    amnesiac.train_classifier(model, digits.train_x, digits.train_y, recipe)
    return model


@pytest.fixture(scope="session")
def forget8(digits: Splits) -> tuple[torch.Tensor, torch.Tensor]:
    idx = amnesiac.parse_forget("random:8:0", digits.train_y)
    return digits.train_x[idx], digits.train_y[idx]
