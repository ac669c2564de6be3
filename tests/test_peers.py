"""The peer methods' mechanisms, each checked on its own (the contract matrix in test_methods.py
covers the rest): what each one may change, what it must leave alone, and its pure functions
against answers known in closed form."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import amnesiac
from amnesiac.methods.bad_teacher import random_init_copy
from amnesiac.methods.base import UnlearnData, alternating_schedule, passes_to_steps
from amnesiac.methods.mu_mis import sensitivity_gap
from amnesiac.methods.random_label import random_wrong_labels
from amnesiac.methods.salun import SalUn, saliency_mask
from amnesiac.methods.scrub import Scrub
from amnesiac.methods.ssd import SSD
from amnesiac.ops.dampen import ssd_dampen, ssd_importance
from amnesiac.ops.mahalanobis import class_statistics, mahalanobis
from amnesiac.ops.nearest_adv import nearest_adversarial


def _retain(digits):
    return digits.train_x[100:600], digits.train_y[100:600]


@given(st.integers(2, 12), st.lists(st.integers(0, 11), min_size=1, max_size=40), st.integers(0, 9))
def test_random_wrong_labels_are_wrong_and_in_range(classes: int, labels: list[int], seed: int):
    y = torch.tensor(labels) % classes
    out = random_wrong_labels(y, classes, torch.Generator().manual_seed(seed))
    assert bool((out != y).all()) and int(out.min()) >= 0 and int(out.max()) < classes


@pytest.mark.parametrize("method", ["random_label", "salun"])
def test_rl_draws_batches_through_the_training_augmentation_only_when_asked(
    tiny_model, forget8, digits, method: str
) -> None:
    """As the official code's training transform: every batch, D_f and D_r, randomly cropped
    after padding by a share of the side (1 pixel of 8 at 0.125) and flipped; by default, as
    given."""
    x, y = forget8
    retain = _retain(digits)
    pool = torch.cat([x, retain[0]]).flatten(1)

    def seen_inputs(**settings: object) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        model = copy.deepcopy(tiny_model)
        model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
        config = amnesiac.make_config(method, epochs=1, retain_steps=1, batch_size=8, **settings)
        amnesiac.get_method(method).cls(config).unlearn(model, UnlearnData(x, y, None, *retain, 10))
        return torch.cat(seen).flatten(1)

    def from_pool(rows: torch.Tensor) -> torch.Tensor:
        return torch.cdist(rows, pool).min(dim=1).values < 1e-6

    assert bool(from_pool(seen_inputs()).all())
    augmented = seen_inputs(crop_fraction=0.125, flip=True)
    assert augmented.shape[1] == pool.shape[1]
    assert not bool(from_pool(augmented).all())
    with pytest.raises(amnesiac.InvalidSettingsError, match="crop_fraction"):
        amnesiac.make_config(method, crop_fraction=0.5)


def test_schedules_count_passes() -> None:
    assert passes_to_steps(10, 4, 1.0) == 3 and passes_to_steps(10, 4, 2.5) == 8
    s = alternating_schedule(rounds=3, forget_rounds=2, n_forget=10, forget_batch=5, n_retain=3,
                             retain_batch=4)  # fmt: skip
    assert [p for p, _ in s] == ["forget", "forget", "retain"] * 2 + ["retain"]
    assert [o for p, o in s if p == "retain"] == [1, 2, 3]


def test_salun_changes_only_masked_parameters(tiny_model, forget8, digits) -> None:
    x, y = forget8
    method = SalUn(amnesiac.make_config("salun", epochs=3, retain_steps=3, batch_size=32,
                                        mask_ratio=0.3, bn_mode="eval"))  # fmt: skip
    data = UnlearnData(x, y, None, *_retain(digits), 10)
    result = method.unlearn(tiny_model, data)
    before, after = tiny_model.state_dict(), result.model.state_dict()
    moved = masked = total = 0
    for name, m in method.mask.items():
        changed = after[name] != before[name]
        assert not bool(changed[m == 0].any()), name  # weight decay and momentum included
        moved += int(changed.sum())
        masked += int(m.sum())
        total += m.numel()
    assert masked == int(total * 0.3) and moved > 0
    for name in before:  # BatchNorm statistics are frozen with bn_mode="eval"
        if "running" in name:
            assert torch.equal(before[name], after[name])


def test_saliency_mask_ranks_gradients_globally() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model[1].bias.zero_()
    x = torch.tensor([[[3.0, 0.1]]])
    mask = saliency_mask(model, x, torch.tensor([0]), ratio=0.25, batch_size=8)
    # d CE / d W = (p - onehot) x^T: the largest entries sit in column 0 (x = 3)
    assert mask["1.weight"].sum() + mask["1.bias"].sum() == 1  # 25% of 6 weights, rounded down
    assert mask["1.weight"][:, 0].sum() == 1


def test_scrub_never_modifies_its_teacher(tiny_model, forget8, digits) -> None:
    x, y = forget8
    method = Scrub(amnesiac.make_config("scrub", rounds=2, retain_steps=3, batch_size=32))
    snapshot = copy.deepcopy(tiny_model.state_dict())
    result = method.unlearn(tiny_model, UnlearnData(x, y, None, *_retain(digits), 10))
    assert method.teacher is not None
    teacher = method.teacher.state_dict()
    assert all(torch.equal(teacher[k], snapshot[k]) for k in snapshot)
    assert result.steps == 2 * 1 + 2 * 3  # 2 max-rounds of one forget batch, 3 min-steps each
    assert not all(torch.equal(v, snapshot[k]) for k, v in result.model.state_dict().items())


def test_scrub_max_steps_move_away_from_the_teacher(tiny_model, forget8, digits) -> None:
    """With max-steps only (no min-steps), the divergence from the teacher on D_f grows."""
    result = amnesiac.unlearn(tiny_model, forget=forget8, method="scrub", retain=_retain(digits),
                              rounds=4, max_rounds=4, retain_steps=1, lr=0.01, gamma=0.0,
                              alpha=0.0)  # fmt: skip
    kls = [h["forget_kl"] for h in result.history if "forget_kl" in h]
    assert len(kls) == 4 and kls[-1] > kls[0]


def test_bad_teacher_random_copy_is_seeded_and_keeps_global_rng(tiny_model) -> None:
    state = torch.random.get_rng_state()
    a, b = random_init_copy(tiny_model, 3), random_init_copy(tiny_model, 3)
    assert torch.equal(torch.random.get_rng_state(), state)
    pa, pb = a.state_dict(), b.state_dict()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(next(a.parameters()), next(tiny_model.parameters()))


def test_bad_teacher_pulls_forget_outputs_toward_the_random_teacher(tiny_model, forget8, digits):
    x, _ = forget8
    result = amnesiac.unlearn(tiny_model, forget=forget8, method="bad_teacher",
                              retain=_retain(digits), retain_fraction=0.0, epochs=200,
                              lr=1e-3, batch_size=8)  # fmt: skip
    bad = random_init_copy(tiny_model, 0)

    def kl(m: nn.Module) -> float:
        with torch.no_grad():
            return float(nn.functional.kl_div(m(x).log_softmax(1), bad(x).softmax(1),
                                              reduction="batchmean"))  # fmt: skip

    assert result.steps == 200
    assert kl(result.model) < 0.2 * kl(tiny_model)


def test_ssd_importance_matches_a_slow_reference(tiny_model, forget8) -> None:
    x, y = forget8
    model = copy.deepcopy(tiny_model).eval()
    fast = ssd_importance(model, x, y, batch_size=3)
    slow = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    batches = [(x[i : i + 3], y[i : i + 3]) for i in range(0, 8, 3)]
    for xb, yb in batches:
        model.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        for n, p in model.named_parameters():
            slow[n] += p.grad.pow(2) / len(batches)
    assert all(torch.allclose(fast[n], slow[n], rtol=1e-5, atol=1e-12) for n in slow)
    free = ssd_importance(model, x, None, kind="output_norm", batch_size=3)
    assert all((v >= 0).all() for v in free.values())
    with pytest.raises(ValueError, match="needs labels"):
        ssd_importance(model, x, None)


def test_ssd_changes_only_parameters_over_the_selection_threshold(tiny_model, forget8, digits):
    x, y = forget8
    method = SSD(amnesiac.make_config("ssd", alpha=10.0, batch_size=64))
    rx, ry = _retain(digits)
    result = method.unlearn(tiny_model, UnlearnData(x, y, None, rx, ry, 10))
    model = copy.deepcopy(tiny_model).eval()
    f_imp = ssd_importance(model, x, y, batch_size=64)
    d_imp = ssd_importance(model, torch.cat([rx, x]), torch.cat([ry, y]), batch_size=64)
    before, after = tiny_model.state_dict(), result.model.state_dict()
    changed_total = 0
    for n in f_imp:
        changed = after[n] != before[n]
        assert not bool(changed[f_imp[n] <= 10.0 * d_imp[n]].any()), n
        assert bool((after[n].abs() <= before[n].abs() + 1e-7).all())  # never grown
        changed_total += int(changed.sum())
    assert changed_total == method.dampened > 0
    assert result.steps == 0 and result.stopped_by == "complete"


def test_ssd_dampen_oracle() -> None:
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(2.0)
    full = {"weight": torch.tensor([[1.0, 1.0, 0.0]])}
    forget = {"weight": torch.tensor([[5.0, 40.0, 1.0]])}
    assert ssd_dampen(layer, full, forget, alpha=10.0, lam=2.0) == 2
    # 5 <= 10: kept; 40 > 10: x min(2*1/40, 1); full 0 < forget 1: zeroed
    assert layer.weight.data.tolist() == [[2.0, pytest.approx(0.1), 0.0]]


def test_nearest_adversarial_on_a_linear_model_lands_near_the_boundary() -> None:
    model = nn.Linear(2, 2).eval()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model.bias.zero_()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, generator=g) * 0.5 + torch.tensor([0.4, 0.0])
    y = model(x).argmax(1)
    adv, label = nearest_adversarial(model, x, y, eps=0.01, steps=20)
    assert bool((label != y).all()) and torch.equal(model(adv).argmax(1), label)
    d_min = (x[:, 0] - x[:, 1]).abs() / 2**0.5  # distance to the line x0 = x1
    dist = (adv - x).norm(dim=1)
    assert bool((dist <= 2 * d_min + 0.01).all())  # the radius at most doubles past it
    same, again = nearest_adversarial(model, adv, 1 - label, eps=0.01)
    assert torch.equal(same, adv) and torch.equal(again, label)  # misclassified: its own example


def test_amun_trains_on_forget_and_adversarial_examples(tiny_model, forget8) -> None:
    from amnesiac.methods.amun import Amun

    x, y = forget8
    method = Amun(amnesiac.make_config("amun", epochs=1, adv_steps=10, batch_size=16))
    result = method.unlearn(tiny_model, UnlearnData(x, y, None, None, None, 10))
    assert len(method.pool_x) == 16 and result.steps == 1
    with torch.no_grad():
        assert torch.equal(tiny_model(method.adv_x).argmax(1), method.adv_y)
    assert bool((method.adv_y != y).all())
    only = Amun(amnesiac.make_config("amun", epochs=1, adv_steps=10, adversarial_only=True))
    only.unlearn(tiny_model, UnlearnData(x, y, None, None, None, 10))
    assert len(only.pool_x) == 8


def test_amun_takes_all_of_d_r_or_a_seeded_sample(tiny_model, forget8, digits) -> None:
    from amnesiac.methods.amun import Amun

    x, y = forget8
    rx, ry = _retain(digits)
    fast = {"epochs": 0.1, "adv_steps": 5, "batch_size": 64, "seed": 3}
    full = Amun(amnesiac.make_config("amun", **fast))
    full.unlearn(tiny_model, UnlearnData(x, y, None, rx, ry, 10))
    assert len(full.pool_x) == 16 + len(rx)
    pools = []
    for _ in range(2):
        sampled = Amun(amnesiac.make_config("amun", retain_sample=50, **fast))
        sampled.unlearn(tiny_model, UnlearnData(x, y, None, rx, ry, 10))
        assert len(sampled.pool_x) == 16 + 50
        rows = sampled.pool_x[16:].flatten(1)
        assert bool((torch.cdist(rows, rx.flatten(1)).min(1).values == 0).all())  # from D_r
        pools.append(sampled.pool_x)
    assert torch.equal(pools[0], pools[1])  # seeded


def test_jit_runs_one_pass_and_smooths(tiny_model, forget8) -> None:
    from amnesiac.methods.jit import lipschitz_loss

    result = amnesiac.unlearn(tiny_model, forget=forget8, method="jit", batch_size=3, lr=1e-2)
    assert result.steps == 3 and result.stopped_by == "max_steps"  # ceil(8 / 3), one pass
    linear = nn.Linear(4, 3)
    x = torch.rand(5, 4)
    bound = torch.linalg.matrix_norm(linear.weight.detach(), ord=2)
    loss = lipschitz_loss(linear, x, sigma=0.1, samples=6, generator=torch.Generator())
    assert 0 < float(loss.detach()) <= 5 * float(bound) + 1e-5  # each ratio <= the spectral norm


def test_sensitivity_gap_on_a_linear_model_is_the_row_norm_difference() -> None:
    linear = nn.Linear(4, 3)
    x = torch.rand(2, 4)
    gap = sensitivity_gap(linear, x, torch.tensor([0, 1]), torch.tensor([2, 2]))
    norms = linear.weight.norm(dim=1)
    assert torch.allclose(gap, torch.stack([norms[0] - norms[2], norms[1] - norms[2]]))
    gap.sum().backward()  # differentiable in the weights (double backward)
    assert linear.weight.grad is not None and bool(linear.weight.grad.abs().sum() > 0)


def test_mu_mis_lowers_the_sensitivity_gap(tiny_model, forget8) -> None:
    result = amnesiac.unlearn(tiny_model, forget=forget8, method="mu_mis", max_steps=30, lr=1e-3)
    gaps = [h["gap"] for h in result.history]
    assert gaps[-1] < gaps[0]
    assert result.stopped_by in {"rule", "max_steps"}  # its own rule, not the objective


def test_mahalanobis_matches_its_definition() -> None:
    g = torch.Generator().manual_seed(1)
    feats = torch.rand(90, 3, generator=g) + torch.arange(3).repeat_interleave(30)[:, None]
    labels = torch.arange(3).repeat_interleave(30)
    stats = class_statistics(feats, labels, num_classes=4)
    assert stats.present.tolist() == [True, True, True, False]
    d = mahalanobis(feats[:5], stats)
    assert torch.isinf(d[:, 3]).all()
    z = (feats[:5].double() + 1e-6).sqrt()
    z = z / z.norm(dim=1, keepdim=True)
    for c in range(3):
        diff = z - stats.means[c]
        ref = torch.stack([v @ stats.precisions[c] @ v for v in diff])
        assert torch.allclose(d[:, c].double(), ref, rtol=1e-4)


def test_scar_targets_another_class_and_needs_surrogate(tiny_model, forget8, digits) -> None:
    from amnesiac.methods.scar import Scar

    x, y = forget8
    method = Scar(amnesiac.make_config("scar", epochs=1, surrogate_batch_size=32))
    data = UnlearnData(x, y, None, None, None, 10, surrogate_x=digits.test_x[:300])
    method.unlearn(tiny_model, data)
    assert bool((method.targets != y).all())
    with pytest.raises(amnesiac.InvalidForgetSetError, match="pass surrogate="):
        amnesiac.unlearn(tiny_model, forget=forget8, method="scar")
    # any model with a last nn.Linear has penultimate features (tests/test_features.py); one
    # without is refused with what to do
    headless = nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten())
    with pytest.raises(amnesiac.InvalidSettingsError, match="features"):
        amnesiac.unlearn(headless, forget=forget8, method="scar", surrogate=digits.test_x[:50])
