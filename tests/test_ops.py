"""Tests of amnesiac.ops: L2 PGD, attack targets, MAS importance and the importance penalty."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import amnesiac
from amnesiac.errors import AmnesiacError, InvalidSettingsError
from amnesiac.metrics import predict_logits
from amnesiac.ops import (
    autocast,
    channels_last_copy,
    importance_penalty,
    mas_importance,
    normalize_importance,
    paper_targets,
    pgd_l2,
    random_targets,
    to_channels_last,
    to_contiguous,
)

# --------------------------------------------------------------------------------------------
# Fixtures: scikit-learn digits (8x8, scaled to [0, 1]) and a small classifier trained on them.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """These tensors are tiny; a second intra-op thread only adds contention on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    """All 1797 digits as (N, 1, 8, 8) float32 in [0, 1], with their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    return x, y


@pytest.fixture(scope="module")
def digits_model(digits: tuple[Tensor, Tensor]) -> nn.Module:
    """An MLP trained for a few hundred full-batch Adam steps (about a second on a CPU)."""
    x, y = digits
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.95
    return model


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _l2(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1)


def _sample(digits: tuple[Tensor, Tensor], n: int) -> tuple[Tensor, Tensor]:
    x, y = digits
    index = torch.randperm(x.shape[0], generator=_gen(1))[:n]
    return x[index], y[index]


# --------------------------------------------------------------------------------------------
# PGD
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["clip_then_project", "project_then_clip"])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_ball_and_box(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module, order: str, random_start: bool
) -> None:
    x, y = _sample(digits, 64)
    target = random_targets(y, 10, 1, generator=_gen(0))[0]
    eps = 1.0
    x_adv = pgd_l2(
        digits_model,
        x,
        target,
        eps=eps,
        step_size=0.3,
        steps=20,
        random_start=random_start,
        generator=_gen(0),
        order=order,  # type: ignore[arg-type]
    )
    assert x_adv.shape == x.shape
    assert x_adv.dtype == x.dtype
    assert x_adv.device == x.device
    assert not x_adv.requires_grad
    assert bool((_l2(x_adv - x) <= eps + 1e-5).all())
    assert x_adv.min() >= 0
    assert x_adv.max() <= 1
    assert bool((_l2(x_adv - x) > 0).all())


def test_pgd_eps_zero_returns_input(digits: tuple[Tensor, Tensor], digits_model: nn.Module) -> None:
    x, y = _sample(digits, 16)
    x_adv = pgd_l2(digits_model, x, y, eps=0.0, step_size=0.5, steps=10, generator=_gen(0))
    assert torch.equal(x_adv, x)
    assert x_adv.data_ptr() != x.data_ptr()


def test_pgd_zero_steps_without_random_start_returns_input(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    x, y = _sample(digits, 16)
    x_adv = pgd_l2(digits_model, x, y, eps=2.0, step_size=0.5, steps=0, random_start=False)
    assert torch.equal(x_adv, x)


def test_pgd_zero_step_size_without_random_start_returns_input(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    x, y = _sample(digits, 16)
    x_adv = pgd_l2(digits_model, x, y, eps=2.0, step_size=0.0, steps=5, random_start=False)
    torch.testing.assert_close(x_adv, x, rtol=0, atol=0)


def test_pgd_random_start_is_advertorch_start(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    """steps=0: u ~ U[0,1]^d drawn from the generator, δ = u − x shrunk onto the eps-ball."""
    x, y = _sample(digits, 32)
    eps = 0.5
    x_adv = pgd_l2(digits_model, x, y, eps=eps, step_size=0.1, steps=0, generator=_gen(3))
    u = torch.rand(x.shape, generator=_gen(3), dtype=x.dtype)
    delta = u - x
    norms = _l2(delta).view(-1, 1, 1, 1)
    expected = (x + delta * torch.clamp(eps / norms, max=1.0)).clamp(0, 1)
    torch.testing.assert_close(x_adv, expected)
    torch.testing.assert_close(_l2(x_adv - x), torch.full((32,), eps))  # ‖u − x‖ ≫ eps here


def test_pgd_targeted_success(digits: tuple[Tensor, Tensor], digits_model: nn.Module) -> None:
    x, y = _sample(digits, 200)
    target = random_targets(y, 10, 1, generator=_gen(0))[0]
    x_adv = pgd_l2(digits_model, x, target, eps=2.0, step_size=0.1, steps=100, generator=_gen(0))
    success = (digits_model(x_adv).argmax(1) == target).float().mean().item()
    assert success >= 0.9


def test_pgd_untargeted_lowers_accuracy(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    x, y = _sample(digits, 200)
    x_adv = pgd_l2(
        digits_model,
        x,
        y,
        eps=2.0,
        step_size=0.1,
        steps=50,
        targeted=False,
        generator=_gen(0),
    )
    accuracy = (digits_model(x_adv).argmax(1) == y).float().mean().item()
    assert accuracy <= 0.1


def _advertorch_reference(
    model: nn.Module, x: Tensor, target: Tensor, u: Tensor, eps: float, alpha: float, steps: int
) -> Tensor:
    """One sample at a time, the steps of reference section 2.2 written out literally."""
    out = []
    for xi, ti, ui in zip(x, target, u, strict=True):
        delta = ui - xi
        delta = delta * min(1.0, eps / delta.norm().item())
        delta = (xi + delta).clamp(0, 1) - xi
        for _ in range(steps):
            delta = delta.detach().requires_grad_(True)
            loss = -F.cross_entropy(model((xi + delta)[None]), ti[None], reduction="sum")
            (g,) = torch.autograd.grad(loss, [delta])
            g = g / max(g.norm().item(), 1e-6)
            delta = delta.detach() + alpha * g
            delta = (xi + delta).clamp(0, 1) - xi
            norm = delta.norm().item()
            if norm > eps:
                delta = delta * (eps / norm)
        out.append((xi + delta).clamp(0, 1))
    return torch.stack(out)


def test_pgd_matches_slow_advertorch_reference(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    model = copy.deepcopy(digits_model).double()
    x, y = _sample(digits, 12)
    x = x.double()
    target = random_targets(y, 10, 1, generator=_gen(5))[0]
    x_adv = pgd_l2(model, x, target, eps=1.5, step_size=0.2, steps=15, generator=_gen(7))
    u = torch.rand(x.shape, generator=_gen(7), dtype=x.dtype)
    expected = _advertorch_reference(model, x, target, u, 1.5, 0.2, 15)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-10)


def test_pgd_matches_torchattacks_targeted(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model = copy.deepcopy(digits_model).double()
    x, y = _sample(digits, 64)
    x = x.double()
    target = random_targets(y, 10, 1, generator=_gen(0))[0]
    eps, alpha, steps = 1.5, 0.2, 20

    attack = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    attack.set_mode_targeted_by_label(quiet=True)
    # torchattacks averages the loss over its batch and adds 1e-10 to the gradient norm, so its
    # step depends on the batch size where gradients are tiny (confident targets); attacked one
    # sample at a time, its mean is our sum.
    expected = torch.cat([attack(x[i : i + 1], target[i : i + 1]) for i in range(x.shape[0])])
    assert expected.dtype == torch.float64

    x_adv = pgd_l2(
        model,
        x,
        target,
        eps=eps,
        step_size=alpha,
        steps=steps,
        random_start=False,
        order="project_then_clip",
        grad_normalization="torchattacks",
    )
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-5)
    assert model.training is False
    assert _l2(x_adv - x).max() > 0.5  # the comparison is not trivial


def test_pgd_orders_differ_when_the_box_is_active(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    x, y = _sample(digits, 64)
    target = random_targets(y, 10, 1, generator=_gen(0))[0]
    attack = functools.partial(
        pgd_l2, digits_model, x, target, eps=2.0, step_size=0.5, steps=10, random_start=False
    )
    a = attack(order="clip_then_project")
    b = attack(order="project_then_clip")
    assert not torch.allclose(a, b)


def test_pgd_deterministic_with_generator(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    x, y = _sample(digits, 32)
    attack = functools.partial(pgd_l2, digits_model, x, y, eps=1.0, step_size=0.2, steps=5)
    a = attack(generator=_gen(11))
    b = attack(generator=_gen(11))
    c = attack(generator=_gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 1000])
def test_pgd_batch_size_does_not_change_result(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module, batch_size: int
) -> None:
    # float64, so that BLAS rounding differences between batch sizes stay negligible.
    model = copy.deepcopy(digits_model).double()
    x, y = _sample(digits, 32)
    target = random_targets(y, 10, 1, generator=_gen(0))[0]
    attack = functools.partial(pgd_l2, model, x.double(), target, eps=1.0, step_size=0.2, steps=10)
    whole = attack(generator=_gen(4))
    chunked = attack(generator=_gen(4), batch_size=batch_size)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-8)


def test_pgd_start_overrides_random_start(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module
) -> None:
    x, y = _sample(digits, 16)
    attack = functools.partial(pgd_l2, digits_model, x, y, eps=1.0, step_size=0.2, steps=5)
    from_x = attack(random_start=False)
    given = attack(random_start=True, generator=_gen(0), start=x.clone())
    assert torch.equal(from_x, given)


def test_pgd_start_is_made_feasible(digits: tuple[Tensor, Tensor], digits_model: nn.Module) -> None:
    x, y = _sample(digits, 16)
    far = 1.0 - x  # far outside a ball of radius 0.5
    x_adv = pgd_l2(digits_model, x, y, eps=0.5, step_size=0.1, steps=0, start=far)
    assert bool((_l2(x_adv - x) <= 0.5 + 1e-5).all())


@pytest.mark.parametrize("training", [True, False])
def test_pgd_leaves_model_untouched(
    digits: tuple[Tensor, Tensor], digits_model: nn.Module, training: bool
) -> None:
    model = copy.deepcopy(digits_model).train(training)
    model[1].weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    x, y = _sample(digits, 16)
    with torch.no_grad():  # works inside no_grad too
        pgd_l2(model, x, y, eps=1.0, step_size=0.2, steps=3, generator=_gen(0))
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


def test_pgd_model_without_parameters_and_empty_input() -> None:
    model = nn.Flatten()
    x = torch.rand(3, 2)
    out = pgd_l2(
        model, x, torch.tensor([0, 1, 0]), eps=0.5, step_size=0.1, steps=3, generator=_gen(0)
    )
    assert bool((_l2(out - x) <= 0.5 + 1e-6).all())
    empty = torch.rand(0, 2)
    out = pgd_l2(
        model,
        empty,
        torch.zeros(0, dtype=torch.int64),
        eps=0.5,
        step_size=0.1,
        steps=3,
        generator=_gen(0),
    )
    assert out.shape == (0, 2)


def test_pgd_reports_every_bad_setting_at_once(digits_model: nn.Module) -> None:
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(InvalidSettingsError) as info:
        pgd_l2(
            digits_model,
            x,
            torch.tensor([0, 1, 2]),
            eps=-1.0,
            step_size=-0.1,
            steps=-2,
            batch_size=0,
            order="sideways",  # type: ignore[arg-type]
        )
    message = str(info.value)
    for word in ("eps", "step_size", "steps", "batch_size", "order", "target has 3"):
        assert word in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AmnesiacError)


@pytest.mark.parametrize(
    ("x", "target", "words"),
    [
        (torch.rand(2, 64) * 3, torch.tensor([0, 1]), "[0, 1]"),
        (torch.rand(2, 64), torch.tensor([0.0, 1.0]), "class indices"),
        (torch.rand(2, 64), torch.tensor([0, 10]), "only 10 classes"),
        (torch.rand(2, 64), torch.tensor([0, -1]), "negative"),
        (torch.randint(0, 2, (2, 64)), torch.tensor([0, 1]), "floating-point"),
    ],
)
def test_pgd_rejects_bad_inputs(
    digits_model: nn.Module, x: Tensor, target: Tensor, words: str
) -> None:
    with pytest.raises(InvalidSettingsError, match=words.replace("[", r"\[").replace("]", r"\]")):
        pgd_l2(digits_model, x, target, eps=1.0, step_size=0.1, steps=2, generator=_gen(0))


def test_pgd_rejects_start_of_wrong_shape(digits_model: nn.Module) -> None:
    x = torch.rand(2, 64)
    with pytest.raises(InvalidSettingsError, match="start"):
        pgd_l2(
            digits_model,
            x,
            torch.tensor([0, 1]),
            eps=1.0,
            step_size=0.1,
            steps=2,
            start=torch.rand(3, 64),
        )


# --------------------------------------------------------------------------------------------
# Attack targets
# --------------------------------------------------------------------------------------------


@st.composite
def _labels(draw: st.DrawFn) -> tuple[Tensor, int]:
    num_classes = draw(st.integers(2, 12))
    values = draw(st.lists(st.integers(0, num_classes - 1), min_size=0, max_size=20))
    return torch.tensor(values, dtype=torch.int64), num_classes


@settings(max_examples=60, deadline=None)
@given(labels=_labels(), n=st.integers(0, 30), seed=st.integers(0, 2**31 - 1))
def test_random_targets_never_hit_the_label(labels: tuple[Tensor, int], n: int, seed: int) -> None:
    y, num_classes = labels
    targets = random_targets(y, num_classes, n, generator=_gen(seed))
    assert targets.shape == (n, y.shape[0])
    assert targets.dtype == torch.int64
    assert bool((targets != y.unsqueeze(0)).all())
    assert bool(((targets >= 0) & (targets < num_classes)).all())


@settings(max_examples=25, deadline=None)
@given(labels=_labels(), seed=st.integers(0, 2**31 - 1))
def test_random_targets_cover_every_other_class(labels: tuple[Tensor, int], seed: int) -> None:
    y, num_classes = labels
    targets = random_targets(y, num_classes, 600, generator=_gen(seed))
    for i, label in enumerate(y.tolist()):
        assert set(targets[:, i].tolist()) == set(range(num_classes)) - {label}


def test_random_targets_are_uniform() -> None:
    y = torch.zeros(20_000, dtype=torch.int64)
    counts = torch.bincount(random_targets(y, 5, 1, generator=_gen(0))[0], minlength=5)
    assert counts[0] == 0
    frequencies = counts[1:].double() / y.shape[0]
    torch.testing.assert_close(
        frequencies, torch.full((4,), 0.25, dtype=torch.float64), rtol=0, atol=0.015
    )


def test_random_targets_deterministic() -> None:
    y = torch.arange(10)
    a = random_targets(y, 10, 5, generator=_gen(3))
    b = random_targets(y, 10, 5, generator=_gen(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("num_classes", [2, 5, 10])
def test_paper_targets_reproduce_the_collision_rule(num_classes: int) -> None:
    y = torch.arange(num_classes).repeat(50)
    targets = paper_targets(y, num_classes, 40, generator=_gen(9))
    raw = torch.randint(0, num_classes, (40, y.shape[0]), generator=_gen(9))
    expected = torch.where(raw == y, torch.full_like(raw, num_classes // 2), raw)
    assert torch.equal(targets, expected)

    middle = num_classes // 2
    same = targets == y.unsqueeze(0)
    # Only samples of class C // 2 can keep their own label as target (the official bug) ...
    assert not bool(same[:, y != middle].any())
    assert bool(same[:, y == middle].any())
    # ... and the ones that do are exactly those whose first draw collided.
    assert torch.equal(same, (raw == y.unsqueeze(0)) & (y == middle).unsqueeze(0))


def test_paper_targets_overdraw_the_middle_class() -> None:
    y = torch.zeros(40_000, dtype=torch.int64)
    counts = torch.bincount(paper_targets(y, 10, 1, generator=_gen(0))[0], minlength=10)
    frequencies = counts.double() / y.shape[0]
    assert frequencies[0] == 0
    assert abs(frequencies[5].item() - 0.2) < 0.01
    assert abs(frequencies[1].item() - 0.1) < 0.01


@pytest.mark.parametrize("draw", [random_targets, paper_targets])
def test_targets_reject_bad_requests(draw: object) -> None:
    assert callable(draw)
    with pytest.raises(InvalidSettingsError) as info:
        draw(torch.tensor([0, 3]), 1, -1, generator=None)
    assert "num_classes" in str(info.value)
    assert "n must be" in str(info.value)
    with pytest.raises(InvalidSettingsError, match="labels must lie"):
        draw(torch.tensor([0, 3]), 3, 2, generator=None)
    with pytest.raises(InvalidSettingsError, match="1-D"):
        draw(torch.tensor([[0, 1]]), 3, 2, generator=None)


# --------------------------------------------------------------------------------------------
# MAS importance
# --------------------------------------------------------------------------------------------


def _bn_net(dtype: torch.dtype = torch.float64) -> nn.Module:
    """A tiny CNN with BatchNorm, in-place ReLU and dropout."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(4 * 6 * 6, 8),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Linear(8, 5),
        ).to(dtype)
        # Non-trivial running statistics.
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.rand(16, 1, 8, 8, dtype=dtype))
    return model.eval()


def _inputs(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.rand(n, 1, 8, 8, generator=_gen(seed), dtype=dtype)


def _slow_per_sample(model: nn.Module, x: Tensor, *, squared: bool) -> dict[str, Tensor]:
    """Ω = mean_i |∂ s(x_i)/∂θ|, one sample and one backward pass at a time."""
    scorer = copy.deepcopy(model).eval()
    omega = {n: torch.zeros_like(p) for n, p in scorer.named_parameters() if p.requires_grad}
    for xi in x:
        scorer.zero_grad(set_to_none=True)
        norm = scorer(xi[None]).flatten().norm()
        (norm**2 if squared else norm).backward()
        for name, p in scorer.named_parameters():
            if p.requires_grad and p.grad is not None:
                omega[name] += p.grad.abs()
    return {name: value / x.shape[0] for name, value in omega.items()}


def _slow_per_batch(
    model: nn.Module, x: Tensor, batch_size: int, bn_train: bool
) -> dict[str, Tensor]:
    """The official estimator (FACIL's mas.py), with gradients zeroed on the right model."""
    scorer = copy.deepcopy(model).eval()
    if bn_train:
        for module in scorer.modules():
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                module.train()
    omega = {n: torch.zeros_like(p) for n, p in scorer.named_parameters() if p.requires_grad}
    for lo in range(0, x.shape[0], batch_size):
        batch = x[lo : lo + batch_size]
        scorer.zero_grad(set_to_none=True)
        torch.norm(scorer(batch), p=2, dim=1).mean().backward()
        for name, p in scorer.named_parameters():
            if p.grad is not None:
                omega[name] += p.grad.abs() * len(batch)
    return {name: value / x.shape[0] for name, value in omega.items()}


def _assert_dicts_close(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_mas_keys_shapes_and_signs() -> None:
    model = _bn_net()
    model[0].bias.requires_grad_(False)
    omega = mas_importance(model, _inputs(10))
    expected = [n for n, p in model.named_parameters() if p.requires_grad]
    assert list(omega) == expected
    assert "0.bias" not in omega
    parameters = dict(model.named_parameters())
    for name, value in omega.items():
        assert value.shape == parameters[name].shape
        assert value.dtype == parameters[name].dtype
        assert not value.requires_grad
        assert bool((value >= 0).all())
        assert bool(torch.isfinite(value).all())
    assert any(bool((value > 0).any()) for value in omega.values())


@pytest.mark.parametrize("squared", [False, True])
def test_mas_matches_slow_per_sample_reference(squared: bool) -> None:
    model = _bn_net()
    x = _inputs(9)
    fast = mas_importance(model, x, batch_size=4, squared=squared)
    _assert_dicts_close(fast, _slow_per_sample(model, x, squared=squared))


def test_mas_eval_mode_does_not_depend_on_batch_size() -> None:
    model = _bn_net()
    x = _inputs(10)
    one = mas_importance(model, x, batch_size=1)
    _assert_dicts_close(mas_importance(model, x, batch_size=10), one)
    _assert_dicts_close(mas_importance(model, x, batch_size=3), one)


@pytest.mark.parametrize("batch_size", [4, 32])
def test_mas_train_mode_is_the_official_estimator(batch_size: int) -> None:
    model = _bn_net()
    x = _inputs(10)
    omega = mas_importance(model, x, batch_size=batch_size, bn_mode="train")
    _assert_dicts_close(omega, _slow_per_batch(model, x, batch_size, bn_train=True))


def test_mas_per_batch_with_eval_bn() -> None:
    model = _bn_net()
    x = _inputs(10)
    omega = mas_importance(model, x, batch_size=4, per_sample=False)
    _assert_dicts_close(omega, _slow_per_batch(model, x, 4, bn_train=False))
    # With one sample per batch, the two estimators agree.
    _assert_dicts_close(
        mas_importance(model, x, batch_size=1, per_sample=False), mas_importance(model, x)
    )


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("training", [True, False])
def test_mas_leaves_model_untouched(bn_mode: str, training: bool) -> None:
    model = _bn_net().train(training)
    model[5].weight.grad = torch.ones_like(model[5].weight)
    before = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    mas_importance(model, _inputs(10), batch_size=4, bn_mode=bn_mode)  # type: ignore[arg-type]
    assert [m.training for m in model.modules()] == modes
    for name, value in model.state_dict().items():  # includes BN running stats
        assert torch.equal(value, before[name]), name
    assert torch.equal(model[5].weight.grad, torch.ones_like(model[5].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "5.weight")


def test_mas_follows_the_model_dtype() -> None:
    model = _bn_net(torch.float32)
    omega = mas_importance(model, _inputs(6, dtype=torch.float32))
    assert all(value.dtype == torch.float32 for value in omega.values())


def test_mas_runs_in_float32_under_autocast() -> None:
    model = _bn_net(torch.float32)
    x = _inputs(6, dtype=torch.float32)
    with autocast("bf16", "cpu"):
        omega = mas_importance(model, x, batch_size=3)
    _assert_dicts_close(omega, mas_importance(model, x, batch_size=3))


def test_autocast_contexts() -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32
    with autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be"):
        autocast("fp16", "cpu")


def test_mas_unused_parameter_gets_zeros() -> None:
    class WithSpare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.spare = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.used(x)

    model = WithSpare().double()
    x = torch.rand(5, 3, dtype=torch.float64, generator=_gen(0))
    for per_sample in (True, False):
        omega = mas_importance(model, x, per_sample=per_sample)
        assert torch.equal(omega["spare.weight"], torch.zeros(2, 3, dtype=torch.float64))
        assert bool((omega["used.weight"] > 0).any())


def test_mas_rejects_bad_requests() -> None:
    model = _bn_net()
    with pytest.raises(InvalidSettingsError) as info:
        mas_importance(
            model,
            _inputs(0),
            batch_size=0,
            bn_mode="test",  # type: ignore[arg-type]
        )
    for word in ("N >= 1", "batch_size", "bn_mode"):
        assert word in str(info.value)
    with pytest.raises(InvalidSettingsError, match="per_sample=True needs bn_mode='eval'"):
        mas_importance(model, _inputs(4), bn_mode="train", per_sample=True)


# --------------------------------------------------------------------------------------------
# Normalization and penalty
# --------------------------------------------------------------------------------------------


def test_normalize_importance_range() -> None:
    importance = {
        "a": torch.rand(5, 4, generator=_gen(0)) * 7 + 3,
        "b": torch.tensor([2.0, 2.0, 2.0]),
        "c": torch.tensor([0.5]),
        "d": torch.zeros(0),
        "e": torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64),
    }
    normalized = normalize_importance(importance)
    assert normalized.keys() == importance.keys()
    assert normalized["a"].min() == 0
    assert normalized["a"].max() == 1
    assert bool(((normalized["a"] >= 0) & (normalized["a"] <= 1)).all())
    assert torch.equal(normalized["b"], torch.zeros(3))
    assert torch.equal(normalized["c"], torch.zeros(1))
    assert normalized["d"].shape == (0,)
    assert torch.equal(normalized["e"], torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64))
    for name, value in normalized.items():
        assert not bool(value.isnan().any())
        assert value.dtype == importance[name].dtype
    assert importance["b"].eq(2.0).all()  # input untouched


def test_normalize_importance_rejects_nan() -> None:
    with pytest.raises(InvalidSettingsError, match="'bad'"):
        normalize_importance({"ok": torch.ones(2), "bad": torch.tensor([1.0, float("nan")])})


def test_penalty_hand_computed() -> None:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.copy_(torch.tensor([3.0]))
    reference = {"weight": torch.tensor([[0.0, 0.0]]), "bias": torch.tensor([1.0])}
    weights = {"weight": torch.tensor([[0.5, 1.0]]), "bias": torch.tensor([2.0])}
    penalty = importance_penalty(model, reference, weights)
    # 0.5 * (0.5*1^2 + 1*2^2 + 2*2^2) = 0.5 * 12.5
    assert penalty.shape == ()
    assert penalty.item() == pytest.approx(6.25)
    # Only the bias penalized.
    only_bias = importance_penalty(model, reference, {"bias": weights["bias"]})
    assert only_bias.item() == pytest.approx(4.0)


def test_penalty_is_zero_at_the_reference() -> None:
    model = _bn_net()
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}
    weights = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    assert importance_penalty(model, reference, weights).item() == 0.0
    assert importance_penalty(model, reference, {}).item() == 0.0


def test_penalty_gradient_matches_autograd() -> None:
    model = _bn_net()
    reference = {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in model.named_parameters()}
    weights = {n: torch.rand_like(p) for n, p in model.named_parameters() if "bias" not in n}
    importance_penalty(model, reference, weights).backward()
    for name, p in model.named_parameters():
        if name in weights:
            assert p.grad is not None
            torch.testing.assert_close(p.grad, weights[name] * (p.detach() - reference[name]))
        else:
            assert p.grad is None


def test_penalty_gradient_matches_finite_differences() -> None:
    model = nn.Linear(3, 2).double()
    reference = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    weights = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    importance_penalty(model, reference, weights).backward()
    assert model.weight.grad is not None
    h = 1e-6
    for index in [(0, 0), (1, 2)]:
        with torch.no_grad():
            model.weight[index] += h
            up = importance_penalty(model, reference, weights).item()
            model.weight[index] -= 2 * h
            down = importance_penalty(model, reference, weights).item()
            model.weight[index] += h
        assert model.weight.grad[index].item() == pytest.approx((up - down) / (2 * h), rel=1e-6)


def test_penalty_rejects_mismatches() -> None:
    model = nn.Linear(2, 1)
    with pytest.raises(InvalidSettingsError) as info:
        importance_penalty(
            model,
            {"weight": torch.zeros(1, 3)},
            {"weight": torch.zeros(1, 2), "bias": torch.zeros(1), "nope": torch.zeros(1)},
        )
    message = str(info.value)
    assert "'nope' is not a parameter" in message
    assert "'bias' is missing from reference" in message
    assert "reference['weight'] has shape (1, 3)" in message


def test_forget_proxies_shapes_ranges_and_distance() -> None:
    from amnesiac.ops import forget_proxies, shift_images

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 12, 12, generator=g)
    p = forget_proxies(x, 50, min_shift=2, max_shift=3, generator=torch.Generator().manual_seed(1))
    assert p.shape == (50, 1, 12, 12)
    assert p.min() >= 0 and p.max() <= 1
    # no proxy equals a forget image
    d = (p[:, None] - x[None]).flatten(2).abs().amax(2)
    assert (d > 1e-6).all()
    # deterministic given the generator
    q = forget_proxies(x, 50, min_shift=2, max_shift=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(p, q)
    assert forget_proxies(x, 0).shape == (0, 1, 12, 12)
    assert forget_proxies(x[:1], 4, mix=True).shape == (4, 1, 12, 12)  # one image: shifts only
    with pytest.raises(ValueError, match="min_shift"):
        forget_proxies(x, 4, min_shift=3, max_shift=2)
    # shifting moves pixels and fills with zeros
    img = torch.zeros(1, 1, 4, 4)
    img[0, 0, 1, 1] = 1.0
    moved = shift_images(img, torch.tensor([1]), torch.tensor([-1]))
    assert moved[0, 0, 2, 0] == 1.0 and moved.sum() == 1.0


def test_shrink_update_finds_the_smallest_fraction_that_still_forgets() -> None:
    from amnesiac.ops import shrink_update

    original, model = nn.Linear(1, 2, bias=False), nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        original.weight.copy_(torch.tensor([[1.0], [0.0]]))  # x=1 -> class 0
        model.weight.copy_(torch.tensor([[-3.0], [0.0]]))  # x=1 -> class 1
    x = torch.ones(1, 1)

    def forgotten(m: nn.Module) -> bool:  # class 0 logit 1 - 4a is below 0 iff a > 1/4
        return bool(m(x).argmax(1).item() == 1)

    out, a = shrink_update(original, model, forgotten, steps=12)
    assert 0.25 < a <= 0.25 + 2**-12
    assert forgotten(out)
    assert torch.allclose(out.weight, torch.tensor([[1 - 4 * a], [0.0]]))
    assert model.weight[0, 0].item() == -3.0 and original.weight[0, 0].item() == 1.0
    assert shrink_update(original, model, forgotten, steps=0)[1] == 1.0
    with pytest.raises(ValueError, match="does not hold"):
        shrink_update(original, original, forgotten)


def test_interpolated_state_mixes_float_entries_and_keeps_the_others() -> None:
    from amnesiac.ops.shrink import interpolated_state

    s0 = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(3)}
    s1 = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(7)}
    assert torch.equal(interpolated_state(s0, s1, 0.25)["w"], torch.tensor([0.5, 3.0]))
    assert interpolated_state(s0, s1, 0.25)["n"].item() == 7  # a step counter: from s1
    assert torch.equal(interpolated_state(s0, s1, 0.0)["w"], s0["w"])
    assert torch.equal(interpolated_state(s0, s1, 1.0)["w"], s1["w"])


# --------------------------------------------------------------------------------------------
# Layout: channels-last storage changes strides, never values
# --------------------------------------------------------------------------------------------


class _ViewsFeatureMap(nn.Module):
    """A conv net that flattens its feature map with ``.view``: fails in channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.bn(self.conv(x))
        return self.fc(h.view(h.size(0), -1))


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()


def test_channels_last_changes_strides_not_values(digits: tuple[Tensor, Tensor]) -> None:
    x = digits[0][:64]
    model = _conv_net()
    state = copy.deepcopy(model.state_dict())
    expected = model(x)
    assert to_channels_last(model, x[:1])
    assert model[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[3].weight.is_contiguous()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    torch.testing.assert_close(model(x), expected)
    to_contiguous(model)
    assert all(t.is_contiguous() for t in model.state_dict().values())


def test_channels_last_falls_back_where_the_forward_needs_the_default_layout(
    digits: tuple[Tensor, Tensor],
) -> None:
    x = digits[0][:16]
    model = _ViewsFeatureMap().train()
    with pytest.raises(RuntimeError):  # the premise: .view fails on a channels-last feature map
        copy.deepcopy(model).to(memory_format=torch.channels_last).eval()(x)
    bn = copy.deepcopy(model.bn.state_dict())
    assert not to_channels_last(model, x[:1])
    assert all(t.is_contiguous() for t in model.state_dict().values())
    assert model.training and model.bn.training  # mode restored
    assert all(torch.equal(bn[k], v) for k, v in model.bn.state_dict().items())  # probe in eval
    # and everything that runs a model still works on it
    logits = predict_logits(model, x)
    assert model.training
    torch.testing.assert_close(logits, model.eval()(x))


def test_channels_last_copy_never_changes_the_model(digits: tuple[Tensor, Tensor]) -> None:
    x = digits[0][:8]
    model = _conv_net()
    fast = channels_last_copy(model, x[:1])
    assert fast is not model
    assert all(t.is_contiguous() for t in model.state_dict().values())
    torch.testing.assert_close(fast(x), model(x))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert channels_last_copy(mlp, x[:1]) is mlp  # nothing 4-D: nothing to gain, no copy
    assert not to_channels_last(mlp, x[:1])


def test_train_classifier_returns_the_default_layout(digits: tuple[Tensor, Tensor]) -> None:
    x, y = digits
    model = _conv_net()
    amnesiac.train_classifier(
        model, x[:128], y[:128], amnesiac.TrainRecipe(epochs=1, batch_size=64, crop_padding=0)
    )
    assert all(t.is_contiguous() for t in model.state_dict().values())
