"""Tests of the nearest-boundary class (DeepFool) and the A-GEM projection in amnesiac.ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from amnesiac.ops import agem_project, boundary_distances, nearest_boundary_class, spread_targets


def _mlp(x: Tensor, y: Tensor) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(200):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval().double()


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    model = _mlp(x, y)
    # inputs well inside [0, 1], so torchattacks' clamp to the box never acts
    x = 0.25 + 0.5 * x.double()
    pred = model(x).argmax(1)
    return model, x[:100], pred[:100]


def test_nearest_boundary_of_a_linear_model_is_the_closest_hyperplane() -> None:
    """Oracle: for a linear model with orthogonal class directions, the nearest wrong class is
    argmin_j (z_y - z_j) / ||w_y - w_j||, and one DeepFool step crosses into it."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    model = nn.Linear(6, 4).double()
    with torch.no_grad():
        model.weight.copy_(q[:4] * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)[:, None])
        model.bias.zero_()
    x = torch.randn(200, 6, generator=gen, dtype=torch.float64)
    z = model(x).detach()
    y = z.argmax(1)
    w = model.weight.detach()
    dist = (z.gather(1, y[:, None]) - z) / (w[y][:, None, :] - w[None]).norm(dim=2).clamp_min(1e-12)
    dist[torch.arange(len(y)), y] = float("inf")
    # where two boundaries are nearly as close, the first-order step may cross either
    order = dist.sort(1).values
    clear = order[:, 1] > 1.5 * order[:, 0]
    assert clear.sum() > 50
    got = nearest_boundary_class(model, x, y)
    assert (got[clear] == dist.argmin(1)[clear]).all()
    assert (got != y).all()


def test_boundary_distances_of_a_linear_model_are_the_hyperplane_distances() -> None:
    """Oracle: for a linear model, |z_y - z_j| / ||w_y - w_j|| exactly, inf at the own class."""
    gen = torch.Generator().manual_seed(1)
    model = nn.Linear(5, 4).double()
    x = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (30,), generator=gen)
    z, w = model(x).detach(), model.weight.detach()
    expected = (z.gather(1, y[:, None]) - z).abs() / (w[y][:, None, :] - w[None]).norm(dim=2)
    expected[torch.arange(30), y] = float("inf")
    got = boundary_distances(model, x, y, batch_size=7)
    assert got.shape == (30, 4)
    assert torch.allclose(got.double(), expected, rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.integers(3, 10), st.integers(0, 10_000), st.integers(0, 3))
def test_spread_targets_respects_the_cap_and_keeps_first_choices_with_room(
    n: int, classes: int, seed: int, slack: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    own = torch.randint(0, classes, (n,), generator=gen)
    d = torch.rand(n, classes, generator=gen)
    d[torch.arange(n), own] = float("inf")
    preferred = d.argmin(1)
    cap = -(-n // (classes - 1)) + slack
    got = spread_targets(preferred, d, cap)
    assert (got != own).all()
    counts = torch.bincount(got, minlength=classes)
    assert int(counts.max()) <= cap
    # a class with room left lost none of the instances that preferred it
    for j in range(classes):
        if counts[j] < cap:
            assert (got[preferred == j] == j).all()
    # kept in a full class: the instances clearest for it (nearest to it)
    for j in range(classes):
        wanted = (preferred == j).nonzero().flatten()
        kept = wanted[got[wanted] == j]
        lost = wanted[got[wanted] != j]
        if len(kept) and len(lost):
            assert d[kept, j].max() <= d[lost, j].min()
    if int(torch.bincount(preferred, minlength=classes).max()) <= cap:
        assert torch.equal(got, preferred)  # no cap binds: the first choices stand
    with pytest.raises(ValueError, match="cannot place"):
        spread_targets(preferred, d, (n - 1) // (classes - 1) if n > classes - 1 else 0)


def test_nearest_boundary_agrees_with_torchattacks_deepfool(
    digits_mlp: tuple[nn.Module, Tensor, Tensor],
) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, x, pred = digits_mlp
    attack = torchattacks.DeepFool(model, steps=50, overshoot=0.02)
    _, expected = attack.forward_return_target_labels(x, pred)
    got = nearest_boundary_class(model, x, pred, steps=50, overshoot=0.02)
    # torchattacks applies the overshoot to each step, the paper (and we) to the sum of steps,
    # so a few inputs between two nearly equidistant boundaries may end in the other class
    agreement = (got == expected).double().mean().item()
    assert agreement >= 0.95, agreement
    assert (got != pred).all()


def test_nearest_boundary_does_not_touch_the_model_and_splits_batches(
    digits_mlp: tuple[nn.Module, Tensor, Tensor],
) -> None:
    model, x, pred = digits_mlp
    model.zero_grad(set_to_none=True)  # torchattacks' backward passes fill them
    before = {k: v.clone() for k, v in model.state_dict().items()}
    whole = nearest_boundary_class(model, x, pred)
    parts = nearest_boundary_class(model, x, pred, batch_size=7)
    assert torch.equal(whole, parts)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="label has"):
        nearest_boundary_class(model, x, pred[:3])


vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=4, max_size=4)


@settings(max_examples=60, deadline=None)
@given(g=vectors, ref=vectors)
def test_agem_projection_never_conflicts_and_keeps_agreeing_gradients(
    g: list[float], ref: list[float]
) -> None:
    gt = [torch.tensor(g[:2], dtype=torch.float64), torch.tensor(g[2:], dtype=torch.float64)]
    rt = [torch.tensor(ref[:2], dtype=torch.float64), torch.tensor(ref[2:], dtype=torch.float64)]
    out = agem_project(gt, rt)
    flat_g, flat_r, flat_o = torch.cat(gt), torch.cat(rt), torch.cat(out)
    if torch.dot(flat_g, flat_r) >= 0 or flat_r.norm() == 0:
        assert torch.equal(flat_o, flat_g)
    else:
        # the reference component is gone and nothing else changed
        assert torch.dot(flat_o, flat_r).abs() <= 1e-9 * (1 + flat_g.norm() * flat_r.norm())
        residual = flat_g - flat_o
        assert torch.linalg.matrix_rank(torch.stack([residual, flat_r])) <= 1
