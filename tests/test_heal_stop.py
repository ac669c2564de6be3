"""The heal ends when it stops helping (issue 26): the template's checks every ``heal_patience``
steps, and l2ul's signal with anchors, the divergence of anchors held out of training; and the
warning for bf16 on a CPU that only emulates it."""

from __future__ import annotations

import logging

import pytest
import torch

import amnesiac
from amnesiac.errors import InvalidSettingsError
from amnesiac.methods.base import UnlearnData
from amnesiac.methods.l2ul import L2UL

FAST = {"max_steps": 400, "seed": 0, "shrink_steps": 0, "proxy_size": 64, "proxy_batch_size": 16}


def _heal(result: amnesiac.UnlearnResult) -> int:
    """Steps the run took after D_f was first forgotten."""
    first = next(i for i, r in enumerate(result.history) if r["forget_acc"] == 0.0)
    return result.steps - (first + 1)


def _checks(result: amnesiac.UnlearnResult) -> list[tuple[int, float]]:
    """(step, signal) of every heal check the run recorded."""
    return [(int(r["step"]), r["heal_signal"]) for r in result.history if "heal_signal" in r]


def test_forget_only_heal_ends_once_the_loss_stops_improving(tiny_model, forget8) -> None:
    base = {**FAST, "heal_steps": 200}
    full = amnesiac.unlearn(tiny_model, forget=forget8, **base)
    early = amnesiac.unlearn(
        tiny_model, forget=forget8, heal_patience=10, heal_check_every=5, **base
    )
    assert early.forgotten and early.steps < full.steps
    checks = _checks(early)
    assert len(checks) >= 3 and all((s - checks[0][0]) % 5 == 0 for s, _ in checks)
    best_step = min(checks, key=lambda c: c[1])[0]
    assert early.steps - best_step >= 10  # it waited heal_patience steps for a better check
    # each check's signal is the mean loss of the 5 steps up to it
    losses = {int(r["step"]): r["loss"] for r in early.history}
    step, signal = checks[-1]
    assert signal == pytest.approx(sum(losses[s] for s in range(step - 4, step + 1)) / 5)
    # the steps before the stop are the full run's, bit for bit
    assert [r["loss"] for r in full.history[: early.steps]] == [r["loss"] for r in early.history]


def test_anchored_heal_returns_to_the_best_held_out_check(tiny_model, forget8, digits) -> None:
    x, y = forget8
    anchors = digits.test_x[:300]
    settings = {**FAST, "anchored_heal_steps": 200, "anchored_augment_to": 0}
    settings |= {"anchored_heal_patience": 30, "anchored_heal_holdout": 0.5}
    data = UnlearnData(x, y, None, None, None, 10, anchors)
    # a gain no check can show: the heal ends heal_patience steps after its first check
    method = L2UL(amnesiac.make_config("l2ul", heal_min_gain=0.99, **settings))
    result = method.unlearn(tiny_model, data)
    checks = _checks(result)
    assert result.forgotten and result.steps - checks[0][0] == 30
    # half the anchors are held out, and never trained on
    assert method.judge_x is not None and method.proxy_x is not None
    assert len(method.judge_x) == 150 and len(method.proxy_x) == 150
    assert not (method.judge_x[:, None] == method.proxy_x[None]).flatten(2).all(2).any()
    # the signal is the held-out anchors' divergence from the original outputs: 0 at the start
    assert method.heal_signal(tiny_model, 10) == pytest.approx(0.0, abs=1e-6)
    assert all(signal > 0 for _, signal in checks)
    # the model handed back is the one of the best check (here the first), not the last
    until = {**settings, "max_steps": checks[0][0]}
    at_best = L2UL(amnesiac.make_config("l2ul", heal_min_gain=0.99, **until))
    expected = at_best.unlearn(tiny_model, data).model
    for p, q in zip(result.model.parameters(), expected.parameters(), strict=True):
        assert torch.equal(p, q)
    # without the checks, the heal runs its count, on every anchor
    settings.pop("anchored_heal_holdout")
    settings.pop("anchored_heal_patience")
    fixed = L2UL(amnesiac.make_config("l2ul", **settings))  # the default: no checks
    full = fixed.unlearn(tiny_model, data)
    assert _heal(full) == 200 and fixed.judge_x is None and not _checks(full)
    assert fixed.proxy_x is not None and len(fixed.proxy_x) == 300
    # by default (and with fewer held-out anchors than MIN_HOLDOUT) the checks use a fixed
    # sample of the anchors the run trains on
    for extra in ({}, {"anchored_heal_holdout": 0.1}):
        judged = L2UL(amnesiac.make_config("l2ul", anchored_heal_patience=30, **settings, **extra))
        assert _checks(judged.unlearn(tiny_model, data))
        assert judged.judge_x is not None and judged.proxy_x is not None
        assert len(judged.judge_x) == 256 and len(judged.proxy_x) == 300
        assert (judged.judge_x[:, None] == judged.proxy_x[None]).flatten(2).all(2).any(1).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"anchored_heal_holdout": 1.0}, "anchored_heal_holdout must be in [0, 1)"),
        ({"heal_min_gain": 1.5}, "heal_min_gain must be in [0, 1)"),
        ({"heal_check_every": 0}, "heal_check_every must be >= 1"),
        ({"anchored_heal_patience": -1}, "anchored_heal_patience must be >= 0"),
        (
            {"anchored_heal_patience": 0, "anchored_heal_holdout": 0.2},
            "the anchored heal is never checked",
        ),
    ],
)
def test_bad_heal_check_settings_are_refused(settings, message) -> None:
    with pytest.raises(InvalidSettingsError, match=message.replace("[", r"\[").replace(")", r"\)")):
        amnesiac.make_config("l2ul", **settings)


def test_the_heal_is_fixed_by_default_and_in_the_presets() -> None:
    for preset in (None, "paper", "surrogate"):
        assert amnesiac.make_config("l2ul", preset=preset).anchored_heal_patience == 0


def test_bf16_on_a_cpu_that_emulates_it_warns_once(monkeypatch, caplog) -> None:
    from amnesiac.ops import precision

    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: False)
    precision._warn_emulated_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="amnesiac"):
        for _ in range(3):
            with precision.autocast("bf16", "cpu"):
                pass
    assert caplog.text.count("PyTorch emulates bfloat16 here") == 1
    caplog.clear()
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: True)
    precision._warn_emulated_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="amnesiac"), precision.autocast("bf16", "cpu"):
        pass
    assert "emulates" not in caplog.text


def test_a_heal_that_has_not_improved_ends_even_where_d_f_came_back(tiny_model) -> None:
    """Oracle for the stop rule: the best check at step 10, patience 30."""
    method = L2UL(amnesiac.make_config("l2ul", anchored_heal_patience=30))
    method.heal_patience, method._first_forgotten = 30, 10
    method._best = (0.1, 10, {})
    assert not method.is_done(False, 39)
    assert method.is_done(False, 40)  # D_f right again: the run hands back the best check
    method._best = None
    assert not method.is_done(False, 400)  # nothing to hand back: the run goes on


def test_a_forget_set_misclassified_from_the_start_gets_the_original_back(
    tiny_model, forget8, digits
) -> None:
    """The check before the first step is the original model, which no later check beats."""
    x = forget8[0]
    with torch.no_grad():
        wrong = (tiny_model.eval()(x).argmax(1) + 1) % 10  # labels the model already gets wrong
    settings = {**FAST, "anchored_heal_patience": 30, "shrink_steps": 0}
    result = amnesiac.unlearn(
        tiny_model, forget=(x, wrong), surrogate=digits.test_x[:300], **settings
    )
    assert result.forgotten and result.steps == 30
    for p, q in zip(result.model.parameters(), tiny_model.parameters(), strict=True):
        assert torch.equal(p, q)
