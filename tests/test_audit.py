"""The audit metrics: oracles with known answers, shadow caching, the API and the CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import amnesiac
from amnesiac.cli import main
from amnesiac.data import Splits
from amnesiac.metrics import (
    linear_cka,
    lira_offline,
    lira_summary,
    output_distance,
    relearn_steps,
    scaled_logit,
    tpr_at_fpr,
)
from amnesiac.models import create_model, model_meta
from amnesiac.shadows import shadow_membership, train_shadows

RECIPE = amnesiac.TrainRecipe(epochs=3, batch_size=64, lr=0.05, crop_padding=0, flip=False)


def test_cka_oracles() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g, dtype=torch.float64)
    assert linear_cka(x, x) == pytest.approx(1.0)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    assert linear_cka(x, x @ q * 3.0) == pytest.approx(1.0)  # orthogonal + isotropic scale
    y = torch.randn(200, 8, generator=g, dtype=torch.float64)
    assert linear_cka(x, y) < 0.3
    with pytest.raises(ValueError, match="same N"):
        linear_cka(x, y[:10])


def test_output_distance_oracles() -> None:
    a = torch.randn(50, 10, generator=torch.Generator().manual_seed(1))
    d = output_distance(a, a.clone())
    assert d["agreement"] == 100.0
    assert d["kl"] == pytest.approx(0.0, abs=1e-12)
    assert d["js"] == pytest.approx(0.0, abs=1e-12)
    far = output_distance(torch.tensor([[50.0, 0.0]]), torch.tensor([[0.0, 50.0]]))
    assert far["agreement"] == 0.0
    assert far["js"] == pytest.approx(np.log(2), rel=1e-6)  # JS is at most ln 2


def test_scaled_logit_matches_definition() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    p = logits.double().softmax(1)[0, 0]
    assert scaled_logit(logits, torch.tensor([0])).item() == pytest.approx(
        float(torch.log(p / (1 - p)))
    )


def test_lira_flags_planted_high_scores_only() -> None:
    g = torch.Generator().manual_seed(0)
    n, s = 400, 8
    shadow = torch.randn(s, n, generator=g, dtype=torch.float64)
    shadow_in = torch.zeros(s, n, dtype=torch.bool)
    remembered = torch.randn(n, generator=g, dtype=torch.float64)
    remembered[:40] += 6.0  # the first 40 are memorized by the target
    scores = lira_offline(remembered, shadow, shadow_in)
    r = lira_summary(scores[:40], scores[40:])
    assert r["auc"] > 0.99 and r["tpr_at_1pct_fpr"] > 90.0
    never = lira_offline(torch.randn(n, generator=g, dtype=torch.float64), shadow, shadow_in)
    r = lira_summary(never[:40], never[40:])
    assert r["tpr_at_1pct_fpr"] < 20.0 and 0.3 < r["auc"] < 0.7
    with pytest.raises(ValueError, match="fewer than 1"):
        lira_offline(remembered, shadow, torch.ones_like(shadow_in))
    with pytest.raises(ValueError, match="fewer than 2"):
        lira_offline(remembered, shadow[:1], shadow_in[:1], fixed_variance=False)


def test_tpr_at_fpr() -> None:
    assert tpr_at_fpr(np.array([3.0, 4.0]), np.array([0.0, 1.0, 2.0]), 0.0) == 100.0
    assert tpr_at_fpr(np.array([0.5]), np.array([1.0]), 0.0) == 0.0


def test_relearn_zero_when_already_correct_and_model_untouched(tiny_model, digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits.train_x[:16], digits.train_y[:16]
    before = copy.deepcopy(tiny_model.state_dict())
    acc = amnesiac.metrics.accuracy(tiny_model, x, y)
    assert relearn_steps(tiny_model, x, y, target_acc=acc) == 0
    wrong = (y + 1) % 10  # labels the model does not predict: it must learn them
    steps = relearn_steps(tiny_model, x, wrong, target_acc=100.0, lr=0.05, max_steps=300)
    assert 0 < steps <= 301
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])


def _tiny_splits(digits: Splits, n: int = 600) -> Splits:
    return dataclasses.replace(digits, train_x=digits.train_x[:n], train_y=digits.train_y[:n])


def test_shadows_are_cached_and_resume(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = _tiny_splits(digits)
    seen: list[tuple[int, bool]] = []
    first = train_shadows(
        data, "cnn", RECIPE, n=2, cache_dir=tmp_path, progress=False,
        on_shadow=lambda i, c: seen.append((i, c)),
    )  # fmt: skip
    assert seen == [(0, False), (1, False)]
    assert first.members.shape == (2, len(data.train_y))
    assert first.members.sum(1).tolist() == [len(data.train_y) // 2] * 2
    assert (first.members.sum(0) == 1).all()  # a pair splits the data into complements
    assert torch.equal(first.members[0], shadow_membership(len(data.train_y), 0, 0))
    # a third model resumes: the first two come from the cache, unchanged
    (tmp_path / "junk.tmp").write_text("")
    seen.clear()
    again = train_shadows(
        data, "cnn", RECIPE, n=3, cache_dir=tmp_path, progress=False,
        on_shadow=lambda i, c: seen.append((i, c)),
    )  # fmt: skip
    assert seen == [(0, True), (1, True), (2, False)]
    x = data.test_x[:20]
    assert torch.equal(first.models[0](x), again.models[0](x))
    with pytest.raises(ValueError, match="at least 2"):
        train_shadows(data, "cnn", RECIPE, n=1, cache_dir=tmp_path, progress=False)


def test_lira_end_to_end_flags_a_memorized_planted_set(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A model that memorized planted mislabeled examples is flagged; one that never saw them
    is not."""
    n_plant = 30
    digits = _tiny_splits(digits, 500)
    y = digits.train_y.clone()
    g = torch.Generator().manual_seed(3)
    y[:n_plant] = (y[:n_plant] + torch.randint(1, 10, (n_plant,), generator=g)) % 10
    data = dataclasses.replace(digits, train_y=y)
    recipe = dataclasses.replace(RECIPE, epochs=40, batch_size=32, lr=0.1, weight_decay=0.0)

    def fit(mask: torch.Tensor, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        m = create_model("cnn", in_channels=1, num_classes=10, mean=data.mean, std=data.std)
        return amnesiac.train_classifier(m, data.train_x[mask], y[mask], recipe)

    # targets trained on half the data, like the shadows (as in Carlini et al.)
    half = shadow_membership(len(y), 0, seed=99)
    with_plant, without = half.clone(), half.clone()
    with_plant[:n_plant], without[:n_plant] = True, False
    remembered, never = fit(with_plant, 1), fit(without, 2)
    shadows = train_shadows(data, "cnn", recipe, n=4, cache_dir=tmp_path, progress=False)
    planted = (data.train_x[:n_plant], y[:n_plant])
    common = dict(
        retain=(data.train_x[n_plant:], y[n_plant:]),
        test=(data.test_x, data.test_y),
        shadows=shadows,
        forget_indices=torch.arange(n_plant),
        relearn_max_steps=50,
    )
    out = amnesiac.audit(never, remembered, forget=planted, **common)  # type: ignore[arg-type]
    assert out["accuracy"]["original"]["forget_acc"] > 90.0
    lira = out["lira"]
    assert lira["original"]["tpr_at_1pct_fpr"] > 50.0, lira["original"]
    assert lira["unlearned"]["tpr_at_1pct_fpr"] < 20.0, lira["unlearned"]
    assert out["mia"]["original"]["mia_loss_auc"] > out["mia"]["unlearned"]["mia_loss_auc"]
    assert out["accuracy"]["original"]["forget_acc"] > 90.0
    assert out["relearn_steps"]["original"] == 0
    assert out["relearn_steps"]["unlearned"] > 0
    assert out["cka"]["original"] == pytest.approx(1.0)


def test_audit_with_retrained_reports_distance(tiny_model, digits, forget8) -> None:  # type: ignore[no-untyped-def]
    r = amnesiac.unlearn(tiny_model, forget=forget8, method="neg_grad", seed=0)
    out = amnesiac.audit(
        r.model,
        tiny_model,
        forget=forget8,
        retain=(digits.train_x[100:600], digits.train_y[100:600]),
        test=(digits.test_x, digits.test_y),
        retrained=tiny_model,
        relearn_max_steps=20,
    )
    assert set(out["accuracy"]) == {"original", "unlearned", "retrained"}
    assert out["distance"]["original"]["test"]["agreement"] == 100.0
    assert out["distance"]["unlearned"]["forget"]["agreement"] < 100.0
    assert "lira" not in out
    json.dumps(out)  # JSON-ready
    with pytest.raises(ValueError, match="forget_indices"):
        amnesiac.audit(
            r.model,
            tiny_model,
            forget=forget8,
            retain=(digits.train_x[100:600], digits.train_y[100:600]),
            test=(digits.test_x, digits.test_y),
            shadows=amnesiac.Shadows(
                [tiny_model, tiny_model], torch.zeros(2, 10, dtype=torch.bool)
            ),
        )


def _save(model: torch.nn.Module, digits: Splits, path: Path) -> None:
    meta = model_meta(
        "cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std,
        input_shape=[1, 8, 8], dataset="digits", recipe=RECIPE.to_dict(),
    )  # fmt: skip
    amnesiac.save_checkpoint(model, path, meta)


def test_cli_audit(tiny_model, digits, forget8, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    original, unlearned = tmp_path / "orig.safetensors", tmp_path / "unl.safetensors"
    _save(tiny_model, digits, original)
    idx = amnesiac.parse_forget("random:8:0", digits.train_y)
    r = amnesiac.unlearn(tiny_model, forget=forget8, method="neg_grad", seed=0)
    _save(r.model, digits, unlearned)
    out = tmp_path / "audit.json"
    args = ["audit", "--model", str(unlearned), "--original", str(original), "--dataset",
            "digits", "--forget", "random:8:0", "--out", str(out), "--no-progress",
            "--relearn-max-steps", "10"]  # fmt: skip
    assert main([*args, "--shadows", "2", "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads(out.read_text())
    assert report["sizes"]["forget"] == len(idx) == 8
    assert report["lira"]["shadow_models"] == 2
    assert "MIA: AUC D_f vs D_test" in capsys.readouterr().out
    # bad input: exit 2, one line, nothing written
    out.unlink()
    assert main([*args, "--shadows", "1"]) == 2
    assert main([*args[:2], str(tmp_path / "missing.safetensors"), *args[3:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("amnesiac: error:") for line in err)
    assert not out.exists()
