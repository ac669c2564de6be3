"""Oracles for the audit metrics: inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amnesiac.metrics.mia import attack_features, auc, mia_from_logits, population_mia


def test_auc_separable_and_reversed() -> None:
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5


def test_separable_losses_give_auc_one_and_all_members() -> None:
    rng = np.random.default_rng(0)
    members = rng.uniform(0.0, 0.1, (500, 1))  # training data: low loss
    nonmembers = rng.uniform(1.0, 2.0, (500, 1))
    still_remembered = rng.uniform(0.0, 0.1, (50, 1))
    r = population_mia(members, nonmembers, still_remembered)
    assert r["attack_auc"] == 1.0
    assert r["auc"] == 1.0
    assert r["member_rate"] == 100.0
    forgotten = rng.uniform(1.0, 2.0, (50, 1))
    r = population_mia(members, nonmembers, forgotten)
    assert r["member_rate"] == 0.0
    assert 0.3 < r["auc"] < 0.7


def test_identical_distributions_give_half() -> None:
    rng = np.random.default_rng(1)
    a, b, t = (rng.normal(size=(4000, 3)) for _ in range(3))
    r = population_mia(a, b, t)
    assert abs(r["attack_auc"] - 0.5) < 0.05
    assert abs(r["auc"] - 0.5) < 0.05


def test_features_shapes_and_values() -> None:
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    loss = attack_features(logits, y, "loss")
    assert loss.shape == (2, 1)
    assert loss[1, 0] == pytest.approx(np.log(2))
    ent = attack_features(logits, y, "entropy")
    assert ent.shape == (2, 3)
    assert ent[1].tolist() == pytest.approx([0.5, 0.5, np.log(2)])
    with pytest.raises(ValueError, match="features"):
        attack_features(logits, y, "margin")  # type: ignore[arg-type]


def test_mia_from_logits_flags_a_memorized_forget_set() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (600,), generator=g)
    confident = torch.nn.functional.one_hot(y, 10).double() * 8
    unsure = torch.randn(600, 10, generator=g, dtype=torch.float64)
    out = mia_from_logits((confident[:40], y[:40]), (confident, y), (unsure, y))
    assert out["mia_loss_auc"] == 1.0 and out["mia_entropy_auc"] == 1.0
    assert out["mia_loss_member_rate"] == 100.0


def test_too_few_examples_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        population_mia(np.zeros((2, 1)), np.ones((2, 1)), np.zeros((1, 1)))


def test_evaluate_membership_columns(digits, tiny_model, forget8) -> None:  # type: ignore[no-untyped-def]
    import amnesiac

    retain = (digits.train_x[100:600], digits.train_y[100:600])
    test = (digits.test_x, digits.test_y)
    out = amnesiac.evaluate(tiny_model, forget=forget8, retain=retain, test=test, membership=True)
    for key in ("mia_loss_member_rate", "mia_loss_auc", "mia_entropy_auc", "mia_loss_attack_auc"):
        assert key in out
    assert 0.0 <= out["mia_loss_auc"] <= 1.0
    with pytest.raises(ValueError, match="needs forget, retain and test"):
        amnesiac.evaluate(tiny_model, forget=forget8, membership=True)
