"""Penultimate features of any nn.Module (issue 27, item 5): SCAR and the audit's CKA run on a
plain nn.Sequential CNN and on a torchvision model, not only on amnesiac's architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import amnesiac
from amnesiac.ops import penultimate_features
from amnesiac.ops.features import last_linear


@pytest.fixture(scope="module")
def sequential(digits) -> nn.Module:
    """A plain nn.Sequential CNN (no features() method) trained on digits for a few epochs."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 64, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip
    recipe = amnesiac.TrainRecipe(epochs=4, batch_size=64, lr=0.05, crop_padding=0, flip=False)
    return amnesiac.train_classifier(model, digits.train_x, digits.train_y, recipe)


def test_features_come_from_the_input_of_the_last_linear(sequential, digits) -> None:
    x = digits.test_x[:7]
    with torch.no_grad():
        feats = penultimate_features(sequential, x)
        assert torch.equal(feats, sequential[:5](x))
    assert not sequential[5]._forward_pre_hooks  # the hook is gone
    with pytest.raises(amnesiac.InvalidSettingsError, match=r"no nn\.Linear"):
        penultimate_features(nn.Sequential(nn.Conv2d(1, 2, 3)), x)


def test_features_of_a_torchvision_model_are_its_pooled_features(digits) -> None:
    model = amnesiac.create_model("tv:resnet18", in_channels=1, num_classes=10,
                                  mean=digits.mean, std=digits.std).eval()  # fmt: skip
    x = digits.test_x[:3]
    with torch.no_grad():
        feats = penultimate_features(model, x)
        head = last_linear(model)
        assert head is not None and feats.shape == (3, head.in_features)
        assert torch.allclose(head(feats), model(x), atol=1e-5)


def test_scar_runs_on_a_plain_sequential(sequential, digits, forget8) -> None:
    before = {k: v.clone() for k, v in sequential.state_dict().items()}
    result = amnesiac.unlearn(sequential, forget=forget8, method="scar",
                              surrogate=digits.test_x[:200], seed=0, epochs=2)  # fmt: skip
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert result.steps > 0
    for k, v in sequential.state_dict().items():
        assert torch.equal(v, before[k])


def test_the_audit_measures_cka_on_a_plain_sequential(sequential, digits, forget8) -> None:
    report = amnesiac.audit(
        sequential, sequential, forget=forget8, retain=(digits.train_x[:200], digits.train_y[:200]),
        test=(digits.test_x[:200], digits.test_y[:200]), relearn_max_steps=5,
    )  # fmt: skip
    assert report["cka"]["unlearned"] == pytest.approx(1.0, abs=1e-4)
