"""l2ul's nearest-boundary targets and projected forget steps (issue 15, levers 3 and 4)."""

from __future__ import annotations

import copy

import torch
from torch import nn

import amnesiac
from amnesiac.methods.base import UnlearnData
from amnesiac.methods.l2ul import L2UL
from amnesiac.ops import nearest_boundary_class

FAST = {"max_steps": 150, "heal_steps": 0, "anchored_heal_steps": 0, "proxy_size": 64}
FAST |= {"proxy_batch_size": 16, "seed": 0}


def test_nearest_target_trains_toward_the_nearest_boundary_class(tiny_model, forget8) -> None:
    x, y = forget8
    method = L2UL(amnesiac.make_config("l2ul", spread_targets=False, **FAST))
    result = method.unlearn(tiny_model, UnlearnData(x, y, None, None, None, 10))
    expected = nearest_boundary_class(tiny_model.eval(), x, y)
    assert method.forget_target is not None
    assert torch.equal(method.forget_target, expected)
    assert (expected != y).all()
    assert result.forgotten
    # the margin hinge toward a target stops once each instance is in its target class
    assert (result.model(x).argmax(1) == expected).float().mean() >= 0.75


def test_spread_targets_caps_each_class_at_its_even_share(tiny_model, digits) -> None:
    """The default without anchors; with anchors the targets stay the nearest classes."""
    idx = amnesiac.parse_forget("random:40:3", digits.train_y)
    x, y = digits.train_x[idx], digits.train_y[idx]
    nearest = nearest_boundary_class(tiny_model.eval(), x, y)
    assert int(torch.bincount(nearest, minlength=10).max()) > 5  # so the cap has work to do
    method = L2UL(amnesiac.make_config("l2ul", **FAST))
    method.unlearn(tiny_model, UnlearnData(x, y, None, None, None, 10))
    assert method.forget_target is not None and (method.forget_target != y).all()
    assert int(torch.bincount(method.forget_target, minlength=10).max()) <= 5  # ceil(40 / 9)
    method = L2UL(amnesiac.make_config("l2ul", **FAST))
    method.unlearn(tiny_model, UnlearnData(x, y, None, None, None, 10, digits.test_x[:64]))
    assert method.forget_target is not None and torch.equal(method.forget_target, nearest)


def test_nearest_target_gives_way_to_relabel_targets(tiny_model, forget8) -> None:
    x, y = forget8
    targets = (y + 1) % 10
    method = L2UL(amnesiac.make_config("l2ul", nearest_target=True, **FAST))
    method.unlearn(tiny_model, UnlearnData(x, y, targets, None, None, 10))
    assert method.forget_target is not None and torch.equal(method.forget_target, targets)


def test_projected_backward_removes_the_conflicting_component() -> None:
    """Oracle: forget term w.a, the rest w.b with a.b < 0: the gradient is a - (a.b/|b|^2) b + b."""
    model = nn.Linear(3, 1, bias=False)
    a = torch.tensor([1.0, 2.0, 0.0])
    b = torch.tensor([-1.0, 0.0, 1.0])
    method = L2UL(amnesiac.make_config("l2ul", project_forget=True))
    forget_term = (model.weight[0] * a).sum()
    method._forget_term = forget_term
    method.backward(model, {"loss": forget_term + (model.weight[0] * b).sum()})
    expected = a - (a @ b) / (b @ b) * b + b
    assert model.weight.grad is not None
    torch.testing.assert_close(model.weight.grad[0], expected)
    # agreeing terms are left alone, and without the setting nothing is projected
    for project, other in ((True, -b), (False, b)):
        model.weight.grad = None
        method = L2UL(amnesiac.make_config("l2ul", project_forget=project))
        forget_term = (model.weight[0] * a).sum()
        method._forget_term = forget_term
        method.backward(model, {"loss": forget_term + (model.weight[0] * other).sum()})
        torch.testing.assert_close(model.weight.grad[0], a + other)


def test_projection_changes_nothing_without_a_rest_of_the_loss(tiny_model, forget8) -> None:
    x, y = forget8
    data = UnlearnData(x, y, None, None, None, 10)
    bare = {**FAST, "proxy_size": 0, "reg_weight": 0.0, "clip_grad_norm": 0.0}
    plain = L2UL(amnesiac.make_config("l2ul", **bare)).unlearn(tiny_model, data)
    projected = L2UL(amnesiac.make_config("l2ul", project_forget=True, **bare)).unlearn(
        tiny_model, data
    )
    a, b = plain.model.state_dict(), projected.model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    # with anchors to hold, the projected run differs and still forgets
    held = L2UL(amnesiac.make_config("l2ul", project_forget=True, **FAST)).unlearn(tiny_model, data)
    assert held.forgotten
    assert not all(torch.equal(a[k], held.model.state_dict()[k]) for k in a)


def _forget_term(method: L2UL, model: nn.Module, x, y, logits) -> tuple[torch.Tensor, int]:
    """The forget term on the batch of all of ``x``, with ``logits`` as the last stop check's,
    and how many images the model's forward pass saw."""
    data = UnlearnData(x, y, None, None, None, 10)
    method.forget_target = None
    method.forget_logits = logits
    seen = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    try:
        term = method._forget_term_of(model, data, torch.arange(len(x)))
    finally:
        handle.remove()
    return term, sum(seen)


def test_instances_past_the_margin_are_left_out_without_changing_the_step() -> None:
    """Oracle: a linear model whose logits are known; instances 0-1 short of the margin, 2-3 past
    it by more than the slack. The term and its gradient equal the full batch's, from half the
    images."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x = torch.randn(4, 4)
    logits = model(x).detach()
    y = logits.argmax(1)  # all classified right: the hinge is margin + gap > 0 for all
    margin = 1.0
    gap = logits.gather(1, y[:, None]).squeeze(1) - logits.scatter(1, y[:, None], -1e9).max(1)[0]
    # past the margin: shift the stop check's logits of 2-3 so their label is far below
    stale = logits.clone()
    stale[2:, :] = 0.0
    stale[2, (y[2] + 1) % 3] = 5.0
    stale[3, (y[3] + 1) % 3] = 5.0
    method = L2UL(amnesiac.make_config("l2ul", margin=margin))
    term, seen = _forget_term(method, model, x, y, stale)
    assert seen == 2
    expected = torch.relu(gap[:2] + margin).sum() / 4  # the batch mean: 2-3 count as zero
    assert torch.allclose(term, expected.detach(), atol=1e-6)
    full, seen_full = _forget_term(method, model, x, y, None)
    assert seen_full == 4
    # the real logits: the same hinge for 0-1, and 2-3 also short of the margin
    assert torch.allclose(full, torch.relu(gap + margin).mean().detach(), atol=1e-6)


def test_active_reduction_averages_over_the_instances_short_of_the_margin() -> None:
    torch.manual_seed(1)
    model = nn.Linear(4, 3)
    x = torch.randn(6, 4)
    logits = model(x).detach()
    y = logits.argmax(1)
    wrong = (y + 1) % 3
    y_mixed = torch.where(torch.arange(6) < 2, y, wrong)  # 2 right, 4 already wrong
    z = logits.gather(1, y_mixed[:, None]).squeeze(1)
    other = logits.scatter(1, y_mixed[:, None], -1e9).max(1)[0]
    hinge = (z - other + 0.5).clamp(min=0)
    active = int((hinge > 0).sum())
    batch = L2UL(amnesiac.make_config("l2ul", margin=0.5))
    act = L2UL(amnesiac.make_config("l2ul", margin=0.5, forget_reduction="active"))
    t_batch, _ = _forget_term(batch, model, x, y_mixed, None)
    t_active, _ = _forget_term(act, model, x, y_mixed, None)
    assert 0 < active < 6
    assert torch.allclose(t_batch, hinge.sum() / 6, atol=1e-6)
    assert torch.allclose(t_active, hinge.sum() / active, atol=1e-6)


def test_a_forget_batch_all_past_the_margin_costs_no_forward_pass() -> None:
    model = nn.Linear(4, 3)
    x = torch.randn(3, 4)
    y = torch.zeros(3, dtype=torch.long)
    far = torch.tensor([[-9.0, 9.0, 0.0]]).repeat(3, 1)  # class 0 far below class 1
    method = L2UL(amnesiac.make_config("l2ul"))
    term, seen = _forget_term(method, model, x, y, far)
    assert seen == 0 and float(term) == 0.0


def test_forget_reduction_is_refused_without_the_margin_loss() -> None:
    import pytest

    with pytest.raises(amnesiac.InvalidSettingsError, match="forget_loss='margin'"):
        amnesiac.make_config("l2ul", forget_loss="neg_ce", forget_reduction="active")


def test_near_fraction_draws_anchors_from_those_nearest_the_forget_set(tiny_model, digits) -> None:
    idx = amnesiac.parse_forget("random:8:3", digits.train_y)
    x, y = digits.train_x[idx], digits.train_y[idx]
    anchors = digits.test_x[:200]
    data = UnlearnData(x, y, None, None, None, 10, anchors)
    settings = {**FAST, "proxy_batch_size": 32, "anchored_augment_to": 0}
    half = L2UL(amnesiac.make_config("l2ul", anchored_near_fraction=0.5, **settings))
    half.prepare(tiny_model, tiny_model.eval(), data)
    assert half.near is not None
    assert 0 < len(half.near) <= 200 // 4 + 8  # a quarter of the anchors, 6 for each of 8
    batch = half._anchor_batch()
    assert len(batch) == 32
    assert torch.isin(batch[:16], half.near).all()
    # uniform by default: no near set, and the draw is the one it always was (the anchors as
    # given: none added)
    plain = L2UL(amnesiac.make_config("l2ul", **settings))
    plain.prepare(tiny_model, tiny_model.eval(), data)
    assert plain.near is None
    expected = torch.randperm(200, generator=torch.Generator().manual_seed(0))[:32]
    assert torch.equal(plain._anchor_batch(), expected)


def test_the_anchored_heal_decays_the_learning_rate_along_a_cosine(tiny_model, digits) -> None:
    """With anchors the run trains at anchored_lr and the heal's steps at anchored_lr times
    heal_lr_factor (1 down toward 0); without anchors the default heal keeps lr."""
    from amnesiac.methods.schedule import heal_lr_factor

    idx = amnesiac.parse_forget("random:8:0", digits.train_y)
    x, y = digits.train_x[idx], digits.train_y[idx]
    settings = {**FAST, "heal_steps": 12, "anchored_heal_steps": 12, "shrink_steps": 0}

    class Recording(L2UL):  # keeps the template's optimizer, to read its learning rate
        def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
            self.opt = super().make_optimizer(model)
            return self.opt

    for anchors, schedule in ((digits.test_x[:64], "cosine"), (None, "constant")):
        method = Recording(amnesiac.make_config("l2ul", **settings))
        lrs: list[float] = []

        def record(_: dict[str, float], method: Recording = method, lrs: list[float] = lrs) -> None:
            lrs.append(method.opt.param_groups[0]["lr"])

        data = UnlearnData(x, y, None, None, None, 10, anchors)
        result = method.unlearn(tiny_model, data, callback=record)
        first = method._first_forgotten
        assert result.forgotten and first is not None and result.steps >= first + 12
        # past the heal's end (an instance short of the objective there), the full rate again
        after = result.steps - first - 12
        lr = 2e-3 if anchors is not None else 1e-3  # anchored_lr in lr's place with anchors
        heal = [lr * heal_lr_factor(h, 12, schedule) for h in range(12)]
        assert lrs == [lr] * first + heal + [lr] * after
        assert (min(lrs[first:]) < 1e-4) == (schedule == "cosine")


def test_a_heal_schedule_without_a_heal_is_refused() -> None:
    import pytest

    with pytest.raises(amnesiac.InvalidSettingsError, match="anchored_heal_steps > 0"):
        amnesiac.make_config("l2ul", anchored_heal_steps=0, anchored_heal_schedule="constant")
    with pytest.raises(amnesiac.InvalidSettingsError, match="set heal_steps > 0"):
        amnesiac.make_config("l2ul", heal_steps=0, heal_schedule="cosine")


def test_augment_to_keeps_the_images_and_adds_copies_up_to_n() -> None:
    from amnesiac.ops import augment_to

    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    grown = augment_to(x, 12, min_shift=1, max_shift=1, generator=torch.Generator().manual_seed(1))
    assert grown.shape == (12, 1, 8, 8)
    assert torch.equal(grown[:5], x)
    # the copies are new images: none equals an anchor
    assert not any(torch.equal(c, a) for c in grown[5:] for a in x)
    assert augment_to(x, 5) is x and augment_to(x, 3) is x and augment_to(x, 0) is x
    empty = x[:0]
    assert augment_to(empty, 10) is empty


def test_anchored_augment_to_grows_only_a_smaller_anchor_set(tiny_model, digits) -> None:
    idx = amnesiac.parse_forget("random:8:3", digits.train_y)
    x, y = digits.train_x[idx], digits.train_y[idx]
    for n_anchors, augment, expected in ((50, 300, 300), (50, 0, 50), (400, 300, 400)):
        data = UnlearnData(x, y, None, None, None, 10, digits.test_x[:n_anchors])
        config = amnesiac.make_config("l2ul", anchored_augment_to=augment, **FAST)
        method = L2UL(config)
        method.prepare(tiny_model, tiny_model.eval(), data)
        assert method.proxy_x is not None and method.proxy_logits is not None
        assert len(method.proxy_x) == len(method.proxy_logits) == expected
        assert torch.equal(method.proxy_x[:n_anchors], data.surrogate_x)


def test_anchored_lr_replaces_lr_with_anchors_only(tiny_model, forget8, digits, caplog) -> None:
    import logging

    import pytest

    with pytest.raises(amnesiac.InvalidSettingsError, match="anchored_lr must be > 0"):
        amnesiac.make_config("l2ul", anchored_lr=0.0)
    fast = {"max_steps": 3, "stop": "budget", "seed": 0, "shrink_steps": 0}
    sur = digits.test_x[:64]
    # the same run whatever the other setting: lr without anchors, anchored_lr with them
    a = amnesiac.unlearn(tiny_model, forget=forget8, lr=5e-3, anchored_lr=1e-9, **fast)
    b = amnesiac.unlearn(tiny_model, forget=forget8, lr=5e-3, anchored_lr=1.0, **fast)
    c = amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, anchored_lr=5e-3, **fast)
    with caplog.at_level(logging.WARNING, logger="amnesiac"):
        d = amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, lr=1.0, **fast)
    assert "lr act only without anchors; with anchors set anchored_lr" in caplog.text
    same = zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    assert all(torch.equal(p, q) for p, q in same)
    moved = zip(c.model.state_dict().values(), tiny_model.state_dict().values(), strict=True)
    assert any(not torch.equal(p, q) for p, q in moved)
    # d ran at the default anchored_lr, not at lr=1.0: the default run's weights
    e = amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, **fast)
    same = zip(d.model.state_dict().values(), e.model.state_dict().values(), strict=True)
    assert all(torch.equal(p, q) for p, q in same)


def test_the_anchors_logits_are_held_beside_the_kl_term_only_with_anchors(
    tiny_model, digits
) -> None:
    """anchored_logit_weight adds the mean squared logit difference on the step's anchors to the
    loss (an oracle computed here from the same anchors); forget-only runs never add it."""
    import torch.nn.functional as F

    idx = amnesiac.parse_forget("random:8:0", digits.train_y)
    x, y = digits.train_x[idx], digits.train_y[idx]
    settings = {**FAST, "anchored_augment_to": 0}
    anchors = digits.test_x[:64]
    for weight in (0.0, 2.5):
        method = L2UL(amnesiac.make_config("l2ul", anchored_logit_weight=weight, **settings))
        data = UnlearnData(x, y, None, None, None, 10, anchors)
        model = copy.deepcopy(tiny_model).eval()
        method.prepare(model, tiny_model.eval(), data)
        with torch.no_grad():  # nudge the model so its logits differ from the original's
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        state = method.generator.get_state()
        parts = method.loss(model, data, 1)
        method.generator.set_state(state)
        batch = method._anchor_batch()
        assert method.proxy_x is not None and method.proxy_logits is not None
        oracle = F.mse_loss(model(method.proxy_x[batch]), method.proxy_logits[batch])
        if weight == 0:
            assert "logit" not in parts
        else:
            assert torch.allclose(parts["logit"], oracle, rtol=1e-5)
            no_logit = parts["loss"] - weight * parts["logit"]
            assert torch.allclose(no_logit, parts["forget"] + 10.0 * parts["proxy"], rtol=1e-5)
    forget_only = L2UL(amnesiac.make_config("l2ul", anchored_logit_weight=2.5, **settings))
    forget_only.prepare(tiny_model, tiny_model.eval(), UnlearnData(x, y, None, None, None, 10))
    assert "logit" not in forget_only.loss(tiny_model, UnlearnData(x, y, None, None, None, 10), 1)
