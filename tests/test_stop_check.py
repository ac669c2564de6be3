"""The stop check after each step runs at the run's precision, and "forgotten" is still decided
in float32 (:func:`amnesiac.methods.status.stop_check`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

import amnesiac
from amnesiac.methods.result import UnlearnData
from amnesiac.methods.status import stop_check


class _Switch(nn.Module):
    """Predicts the true label in float32 and another class inside ``low`` (a stand-in for a
    bfloat16 pass whose rounding crosses the boundary); counts each kind of pass."""

    def __init__(self, label: Tensor) -> None:
        super().__init__()
        self.label = label
        self.low = False
        self.passes = {"low": 0, "full": 0}

    def forward(self, x: Tensor) -> Tensor:
        self.passes["low" if self.low else "full"] += 1
        pred = (self.label[: len(x)] + (1 if self.low else 0)) % 10
        return nn.functional.one_hot(pred, 10).float()


def _data(n: int = 4) -> tuple[UnlearnData, Tensor]:
    y = torch.arange(n) % 10
    x = torch.zeros(n, 1, 2, 2)
    data = UnlearnData(x, y, targets=None, retain_x=None, retain_y=None, num_classes=10)
    return data, y


def _low(model: _Switch) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def ctx() -> Iterator[None]:
        model.low = True
        try:
            yield
        finally:
            model.low = False

    return ctx()


def test_a_low_precision_forgotten_is_redone_in_float32_where_it_decides() -> None:
    data, y = _data()
    model = _Switch(y)
    _, stats = stop_check(
        model, data, batch_size=8, low_precision=_low(model), decisive=lambda: True
    )
    assert stats["forgotten"] == 0.0  # float32 has the final word
    assert model.passes == {"low": 1, "full": 1}


def test_a_low_precision_forgotten_that_decides_nothing_costs_no_float32_pass() -> None:
    data, y = _data()
    model = _Switch(y)
    _, stats = stop_check(
        model, data, batch_size=8, low_precision=_low(model), decisive=lambda: False
    )
    assert stats["forgotten"] == 1.0
    assert model.passes == {"low": 1, "full": 0}


def test_without_low_precision_the_check_is_one_float32_pass() -> None:
    data, y = _data()
    model = _Switch(y)
    _, stats = stop_check(model, data, batch_size=8, low_precision=None, decisive=lambda: True)
    assert stats["forgotten"] == 0.0
    assert model.passes == {"low": 0, "full": 1}


def test_a_bf16_run_checks_in_float32_only_where_it_decides(tiny_model, forget8) -> None:
    """A bf16 ``l2ul`` run with a heal: float32 forget-set passes only at the first forgotten
    step, at the heal's end and once after the steps; its result agrees with float32."""
    full_passes = 0

    def count(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        nonlocal full_passes
        float32_check = not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
        if float32_check and len(args[0]) == len(forget8[0]):
            full_passes += 1

    handle = tiny_model.register_forward_pre_hook(count)
    try:
        result = amnesiac.unlearn(
            tiny_model,
            forget=forget8,
            method="l2ul",
            precision="bf16",
            heal_steps=20,
            shrink_steps=0,
            seed=0,
        )
    finally:
        handle.remove()
    first = next(int(h["step"]) for h in result.history if h["forget_acc"] == 0.0)
    assert result.forgotten and result.steps >= first + 20, result.steps
    # before the run, the first forgotten step, the heal's end, the run's end
    assert 2 <= full_passes <= 4, full_passes
    assert amnesiac.evaluate(result.model, forget=forget8)["forget_acc"] == 0.0
