"""l2ul's nearest-boundary targets and projected forget steps (issue 15, levers 3 and 4)."""

from __future__ import annotations

import torch
from torch import nn

import amnesiac
from amnesiac.methods.base import UnlearnData
from amnesiac.methods.l2ul import L2UL
from amnesiac.ops import nearest_boundary_class

FAST = {"max_steps": 150, "heal_steps": 0, "proxy_size": 64, "proxy_batch_size": 16, "seed": 0}


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
