"""The contract every registered method keeps, plus oracles with known answers."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Literal

import pytest
import torch
from torch import nn

import amnesiac
from amnesiac.data import Splits
from amnesiac.methods.base import registered
from amnesiac.methods.l2ul import L2UL
from amnesiac.models import create_model
from amnesiac.testing import ContractError, check_method, model_snapshot, snapshot_diff

METHODS = sorted(registered())


def fast(method: str, **extra: Any) -> dict[str, Any]:
    """Settings that make a method run in well under a second on the tiny model."""
    fields = {f.name: f.default for f in dataclasses.fields(registered()[method].config_cls)}
    s: dict[str, Any] = {"seed": 0}
    if method == "retrain":
        s.update(epochs=1, batch_size=128)
    elif registered()[method].cls.iterative:
        s.update(max_steps=4)
    s.update(PEER_FAST.get(method, {}))
    if fields.get("n_adv"):
        s.update(n_adv=2, pgd_steps=3)
    if fields.get("proxy_size"):
        s.update(proxy_size=64, proxy_batch_size=16)
    if "retain_batch_size" in fields:
        s.update(retain_batch_size=32)
    s.update(extra)
    return s


#: The peers' own schedules made short (their step budgets come from passes over their data).
PEER_FAST: dict[str, dict[str, Any]] = {
    "random_label": {"epochs": 2, "retain_steps": 2, "batch_size": 32},
    "salun": {"epochs": 2, "retain_steps": 2, "batch_size": 32},
    "scrub": {"rounds": 2, "retain_steps": 2, "batch_size": 32},
    "bad_teacher": {"batch_size": 64, "retain_fraction": 0.2},
    "amun": {"adv_steps": 5, "epochs": 2, "batch_size": 8},
    "jit": {"samples": 3, "epochs": 4, "batch_size": 4},
    "scar": {"epochs": 2, "surrogate_batch_size": 32, "surrogate_steps": 2},
    "ssd": {"batch_size": 64},
}


def surrogate_for(method: str, digits: Splits) -> torch.Tensor | None:
    """Unlabeled in-domain images for the methods that need them (held-out digits)."""
    return digits.test_x[:200] if "surrogate" in registered()[method].reads else None


def run(method: str, model: nn.Module, forget: Any, digits: Splits, **extra: Any):
    retain = (digits.train_x[100:600], digits.train_y[100:600])
    return amnesiac.unlearn(
        model,
        forget=forget,
        method=method,
        retain=retain,
        surrogate=surrogate_for(method, digits),
        **fast(method, **extra),
    )


@pytest.mark.parametrize("method", METHODS)
def test_contract(method: str, tiny_model, forget8, digits) -> None:
    """amnesiac.testing's checks, on every registered method (and every method added later):
    it forgets under its fast settings, leaves the caller's model bitwise untouched (here in an
    unusual mode, with hooks on a submodule and a stale gradient), and reruns from its config."""
    model = copy.deepcopy(tiny_model).train()
    inner = list(model.modules())[-1]
    inner.register_forward_hook(lambda *a: None)
    inner.register_forward_pre_hook(lambda *a: None)
    next(model.parameters()).grad = torch.ones_like(next(model.parameters()))
    retain = (digits.train_x[100:600], digits.train_y[100:600])
    result = check_method(
        method, model, forget8, retain=retain, surrogate=surrogate_for(method, digits)
    )
    assert result.method == method
    assert result.stopped_by in {"forgotten", "rule", "max_steps", "complete"}
    assert result.seconds["total"] > 0


def test_contract_checks_catch_a_method_that_breaks_them(tiny_model, forget8) -> None:
    """The checks can fail: a run that does not forget is refused, and the snapshot sees a
    hook added to any submodule and a changed buffer."""
    with pytest.raises(ContractError, match="did not forget"):
        check_method("neg_grad", tiny_model, forget8, max_steps=1)
    model = copy.deepcopy(tiny_model)
    snap = model_snapshot(model)
    list(model.modules())[-1].register_full_backward_hook(lambda *a: None)
    assert snap["hooks"] != model_snapshot(model)["hooks"]
    buffer = next(
        k for k, v in model.state_dict().items() if v.is_floating_point() and "running" in k
    )
    model.state_dict()[buffer].add_(1.0)
    assert not torch.equal(snap["state"][buffer], model_snapshot(model)["state"][buffer])


@pytest.mark.parametrize("method", METHODS)
def test_deterministic(method: str, tiny_model, forget8, digits) -> None:
    a = run(method, tiny_model, forget8, digits).model.state_dict()
    b = run(method, tiny_model, forget8, digits).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", METHODS)
def test_float64(method: str, tiny_model, forget8, digits) -> None:
    model = copy.deepcopy(tiny_model).double()
    result = run(method, model, forget8, digits)
    assert all(p.dtype == torch.float64 for p in result.model.parameters())
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


@pytest.mark.parametrize("method", METHODS)
def test_bf16_autocast_keeps_float32_weights(method: str, tiny_model, forget8, digits) -> None:
    """precision="bf16" changes the computation (the weights differ from float32's) but not the
    weights' dtype, and "forgotten" is still decided in float32."""
    iterative = registered()[method].cls.iterative
    budget = {"stop": "budget"} if iterative else {}  # retrain and ssd take no steps
    fp32 = run(method, tiny_model, forget8, digits, **budget).model.state_dict()
    result = run(method, tiny_model, forget8, digits, precision="bf16", **budget)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert any(not torch.equal(v, fp32[k]) for k, v in result.model.state_dict().items())
    forget_acc = amnesiac.evaluate(result.model, forget=forget8)["forget_acc"]
    assert result.forgotten == (forget_acc == 0.0)


def test_bf16_training_inside_a_callers_autocast_uses_the_updated_weights(digits) -> None:
    """Autocast caches the bfloat16 copies of the weights for its outermost region; training
    inside a caller's must not keep using the first step's weights."""
    recipe = amnesiac.TrainRecipe(
        epochs=3, batch_size=64, lr=0.05, crop_padding=0, flip=False, precision="bf16"
    )
    accs = []
    for outer in (False, True):
        torch.manual_seed(0)
        model = create_model("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=outer):
            amnesiac.train_classifier(model, digits.train_x, digits.train_y, recipe)
        accs.append(amnesiac.evaluate(model, test=digits.test())["test_acc"])
    assert accs[0] > 80.0 and accs[1] > 80.0, accs  # 16% with the first step's weights


@pytest.mark.parametrize("method", METHODS)
def test_every_choice_setting_is_validated_from_its_literal(method: str) -> None:
    """Each setting annotated with a Literal refuses any other value, naming the allowed ones
    (written once, in the annotation)."""
    import typing

    cls = registered()[method].config_cls
    hints = typing.get_type_hints(cls)
    literal = [
        f.name for f in dataclasses.fields(cls) if typing.get_origin(hints[f.name]) is Literal
    ]
    assert {"objective", "precision"} <= set(literal)
    for name in literal:
        allowed = list(typing.get_args(hints[name]))
        with pytest.raises(amnesiac.InvalidSettingsError, match=f"{name} must be one of"):
            cls(**{name: "nonsense"})
        assert str(allowed) in _message(lambda n=name: cls(**{n: "nonsense"}))
        cls(**{name: allowed[-1]})  # every allowed value is accepted
    with pytest.raises(amnesiac.InvalidSettingsError, match="precision must be one of"):
        amnesiac.TrainRecipe(precision="half")  # type: ignore[arg-type]


def _message(make: Any) -> str:
    try:
        make()
    except amnesiac.InvalidSettingsError as e:
        return str(e)
    raise AssertionError("no error")


@pytest.mark.parametrize("method", [m for m in METHODS if registered()[m].cls.iterative])
def test_zero_steps_returns_same_weights(method: str, tiny_model, forget8, digits) -> None:
    result = run(method, tiny_model, forget8, digits, max_steps=0)
    assert result.steps == 0 and result.stopped_by == "no_steps"
    ref = tiny_model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in result.model.state_dict().items())


def test_mas_off_equals_adversarial_only(tiny_model, forget8, digits) -> None:
    same = {"forget_scale_k": 0, "batch_size": 32}
    a = run("l2ul", tiny_model, forget8, digits, reg_weight=0.0, n_adv=2, pgd_steps=3, proxy_size=0,
            **same)  # fmt: skip
    a = a.model.state_dict()
    b = run("l2ul_adv", tiny_model, forget8, digits).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_adversarial_examples_equals_importance_only(tiny_model, forget8, digits) -> None:
    a = run("l2ul", tiny_model, forget8, digits, proxy_size=0, forget_scale_k=0, batch_size=32)
    a = a.model.state_dict()
    b = run("l2ul_imp", tiny_model, forget8, digits).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_forget_term_scales_with_k_above_forget_scale_k(tiny_model, forget8, digits) -> None:
    # k=8 above forget_scale_k=4 doubles the forget term: the same as a fixed forget weight of 2
    a = run("l2ul", tiny_model, forget8, digits, forget_scale_k=4).model.state_dict()
    b = run("l2ul", tiny_model, forget8, digits, forget_scale_k=0, weighting="fixed",
            forget_weight=2.0).model.state_dict()  # fmt: skip
    assert all(torch.equal(a[k], b[k]) for k in a)
    # at or below forget_scale_k nothing changes
    c = run("l2ul", tiny_model, forget8, digits, forget_scale_k=8).model.state_dict()
    d = run("l2ul", tiny_model, forget8, digits, forget_scale_k=0).model.state_dict()
    assert all(torch.equal(c[k], d[k]) for k in c)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_stop_rule_fires_at_zero_forget_accuracy(tiny_model, forget8) -> None:
    result = amnesiac.unlearn(tiny_model, forget=forget8, method="neg_grad", lr=0.05, max_steps=200)
    assert result.stopped_by == "forgotten"
    accs = [h["forget_acc"] for h in result.history]
    assert accs[-1] == 0.0 and all(a > 0 for a in accs[:-1])


def test_budget_stop_runs_every_step(tiny_model, forget8) -> None:
    result = amnesiac.unlearn(
        tiny_model, forget=forget8, method="neg_grad", lr=0.05, max_steps=7, stop="budget"
    )
    assert result.steps == 7 and result.stopped_by == "max_steps"


def test_relabel_hits_given_targets(tiny_model, forget8) -> None:
    _, y = forget8
    targets = (y + 1) % 10
    result = amnesiac.unlearn(
        tiny_model, forget=forget8, method="relabel", targets=targets, lr=0.05, max_steps=300
    )
    assert result.forgotten and result.stopped_by == "forgotten"
    m = amnesiac.evaluate(result.model, forget=forget8, targets=targets)
    assert m["forget_target_acc"] == 100.0


@pytest.mark.parametrize("method", ["l2ul", "l2ul_adv", "l2ul_imp"])
def test_l2ul_family_relabel_objective(method: str, tiny_model, forget8) -> None:
    result = amnesiac.unlearn(
        tiny_model,
        forget=forget8,
        method=method,
        objective="relabel",
        lr=1e-3,
        max_steps=1000,
        **({"n_adv": 2, "pgd_steps": 5} if method == "l2ul_adv" else {}),
    )
    assert result.forgotten
    assert result.history[-1]["target_acc"] == 100.0


def test_bn_eval_mode_keeps_running_statistics(tiny_model, forget8) -> None:
    result = amnesiac.unlearn(
        tiny_model, forget=forget8, method="neg_grad", bn_mode="eval", max_steps=3, stop="budget"
    )
    bn = [k for k in tiny_model.state_dict() if "running" in k]
    assert bn
    new, old = result.model.state_dict(), tiny_model.state_dict()
    assert all(torch.equal(new[k], old[k]) for k in bn)


def test_divergence_is_reported_and_input_untouched(tiny_model, forget8) -> None:
    model = copy.deepcopy(tiny_model)
    before = model_snapshot(model)
    with pytest.raises(amnesiac.DivergenceError, match="untouched"):
        amnesiac.unlearn(
            model, forget=forget8, method="neg_grad", lr=1e30, max_steps=50, stop="budget"
        )
    assert snapshot_diff(before, model_snapshot(model)) is None


def _overconfident(model: nn.Module, scale: float) -> nn.Module:
    """``model`` with its classifier's weights and bias multiplied by ``scale``: the same
    predictions, logits ``scale`` times larger (like a model that memorized its data)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in list(out.parameters())[-2:]:
            p.mul_(scale)
    return out


def test_a_run_that_diverges_is_redone_with_the_gradient_bounded(tiny_model, forget8, digits):
    # regression: neg_grad_retain diverged on a model that memorized its data (NaN at step 11
    # on benchmarks/models/fashion-mnist-10k-memorize); here the same on an overconfident model
    model = _overconfident(tiny_model, 30.0)
    before = model_snapshot(model)
    kw: dict[str, Any] = dict(
        forget=forget8, retain=(digits.train_x, digits.train_y), method="neg_grad_retain",
        seed=0, max_steps=60,
    )  # fmt: skip
    with pytest.raises(amnesiac.DivergenceError, match="loss became nan"):
        amnesiac.unlearn(model, rescue_clip_grad_norm=0.0, **kw)  # the divergence, reproduced
    seen: list[dict[str, float]] = []
    result = amnesiac.unlearn(model, callback=seen.append, **kw)
    assert result.rescued_from is not None and "nan" in result.rescued_from
    assert result.forgotten and result.config["clip_grad_norm"] == 20.0
    assert result.seconds["total"] >= result.seconds["diverged"] > 0
    assert len(seen) > len(result.history)  # the callback saw the diverged run's steps too
    # oracle: the rescue is the run that asks for the bound itself, bit for bit
    bounded = amnesiac.unlearn(model, clip_grad_norm=20.0, **kw)
    assert bounded.rescued_from is None
    new, ref = result.model.state_dict(), bounded.model.state_dict()
    assert all(torch.equal(new[k], ref[k]) for k in ref)
    assert snapshot_diff(before, model_snapshot(model)) is None


def test_no_rescue_where_the_run_is_already_bounded(tiny_model, forget8, digits) -> None:
    from amnesiac.methods.status import rescue_bound

    assert rescue_bound(amnesiac.make_config("neg_grad_retain")) == 20.0
    assert rescue_bound(amnesiac.make_config("neg_grad_retain", clip_grad_norm=50.0)) == 20.0
    assert rescue_bound(amnesiac.make_config("l2ul")) is None  # bounded at 20 already
    assert rescue_bound(amnesiac.make_config("neg_grad", rescue_clip_grad_norm=0.0)) is None
    assert rescue_bound(amnesiac.make_config("retrain")) is None  # no update steps
    with pytest.raises(amnesiac.InvalidSettingsError, match="rescue_clip_grad_norm"):
        amnesiac.make_config("neg_grad", rescue_clip_grad_norm=-1.0)
    # bounded at the rescue's bound, a diverging run raises and says both runs diverged
    with pytest.raises(amnesiac.DivergenceError, match=r"second with it bounded at 20"):
        amnesiac.unlearn(
            tiny_model, forget=forget8, method="neg_grad", lr=1e30, max_steps=50, stop="budget"
        )


def test_paper_preset_resolves_official_settings() -> None:
    cfg = amnesiac.make_config("l2ul", "paper")
    assert (cfg.lr, cfg.momentum, cfg.weight_decay) == (1e-3, 0.9, 1e-4)
    assert cfg.forget_loss == "neg_ce" and cfg.weighting == "batch" and cfg.bn_mode == "train"
    assert cfg.reg_weight == 1.0 and cfg.pgd_steps == 100 and cfg.target_rule == "paper"
    assert amnesiac.make_config("l2ul", "paper", lr=0.5).lr == 0.5  # explicit beats preset


def test_errors_name_the_problem(tiny_model, forget8, digits) -> None:
    with pytest.raises(amnesiac.UnknownNameError, match="Did you mean 'l2ul'"):
        amnesiac.unlearn(tiny_model, forget=forget8, method="l2u1")
    with pytest.raises(amnesiac.InvalidSettingsError, match="did you mean 'max_steps'"):
        amnesiac.unlearn(tiny_model, forget=forget8, max_step=3)
    with pytest.raises(amnesiac.InvalidSettingsError, match=r"lr must be > 0.*batch_size"):
        amnesiac.make_config("l2ul", lr=-1.0, batch_size=0)
    with pytest.raises(amnesiac.InvalidSettingsError, match="no preset"):
        amnesiac.make_config("relabel", "paper")
    with pytest.raises(ValueError, match="pass retain="):
        amnesiac.unlearn(tiny_model, forget=forget8, method="finetune")
    x, y = forget8
    with pytest.raises(amnesiac.InvalidForgetSetError, match="must differ"):
        amnesiac.unlearn(tiny_model, forget=forget8, method="relabel", targets=y.clone())
    with pytest.raises(amnesiac.InvalidForgetSetError, match="forget labels"):
        amnesiac.unlearn(tiny_model, forget=(x, y + 10), method="neg_grad")
    with pytest.raises(amnesiac.InvalidSettingsError, match="supports objectives"):
        amnesiac.unlearn(tiny_model, forget=forget8, method="neg_grad", objective="relabel")


def test_list_methods_describes_each() -> None:
    methods = amnesiac.list_methods()
    assert [m.name for m in methods] == METHODS
    for m in methods:
        assert m.summary and m.reads[0] == "forget"
    assert {m.name for m in methods if m.needs_retain} == {
        "neg_grad_retain", "finetune", "retrain", "random_label", "salun", "scrub", "bad_teacher",
        "ssd",
    }  # fmt: skip


def test_duplicate_registration_refused() -> None:
    from amnesiac.methods.base import register
    from amnesiac.methods.neg_grad import NegGrad

    class Again(NegGrad):
        name = "neg_grad"

    with pytest.raises(ValueError, match="already registered"):
        register(Again)


def test_evaluate_accepts_datasets_and_pairs(tiny_model, digits) -> None:
    a = amnesiac.evaluate(tiny_model, test=digits.test(), retain=(digits.train_x, digits.train_y))
    assert set(a) == {"retain_acc", "test_acc"}
    assert a["test_acc"] > 85.0
    assert a["retain_acc"] == pytest.approx(
        amnesiac.evaluate(tiny_model, retain=digits.train())["retain_acc"]
    )


def test_evaluate_refuses_a_model_with_nonfinite_outputs(tiny_model, digits) -> None:
    broken = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("inf"))
    with pytest.raises(amnesiac.DivergenceError, match=r"NaN or infinite logits on \d+ of 20 test"):
        amnesiac.evaluate(broken, test=(digits.test_x[:20], digits.test_y[:20]))


def test_shipped_digits_model_forgets_eight_with_l2ul(digits) -> None:
    ckpt = amnesiac.load_pretrained("digits")
    idx = amnesiac.parse_forget("random:8:0", digits.train_y)
    forget = (digits.train_x[idx], digits.train_y[idx])
    result = amnesiac.unlearn(ckpt.model, forget=forget, method="l2ul", seed=0)
    assert result.forgotten
    assert amnesiac.evaluate(result.model, forget=forget)["forget_acc"] == 0.0


def test_l2ul_computes_importance_for_every_parameter(tiny_model, forget8) -> None:
    from amnesiac.methods.base import UnlearnData
    from amnesiac.methods.l2ul import L2UL

    for bn in ("eval", "train"):
        cfg = amnesiac.make_config("l2ul", n_adv=0, importance_bn_mode=bn, max_steps=1)
        method = L2UL(cfg)
        x, y = forget8
        method.unlearn(tiny_model, UnlearnData(x, y, None, None, None, 10))
        names = {k for k, p in tiny_model.named_parameters()}
        assert set(method.weights) == names
        assert all(((w >= 0) & (w <= 1)).all() for w in method.weights.values())


def test_heal_steps_continue_past_the_first_forgotten_step(tiny_model, forget8) -> None:
    plain = amnesiac.unlearn(tiny_model, forget=forget8, method="relabel", lr=0.05, max_steps=300)
    healed = amnesiac.unlearn(
        tiny_model, forget=forget8, method="relabel", lr=0.05, max_steps=300, heal_steps=5
    )
    assert plain.stopped_by == healed.stopped_by == "forgotten"
    assert healed.steps >= plain.steps + 5
    assert healed.forgotten


def test_the_template_leaves_the_learning_rate_of_a_method_without_a_heal_schedule(
    tiny_model, forget8
) -> None:
    """The heal's schedule is the template's, but only a method with ``heal_schedule`` set
    (l2ul) has its rate changed; another keeps its optimizer's rate through the heal."""
    from amnesiac.methods.base import UnlearnData, get_method

    cls = get_method("relabel").cls
    lrs: list[float] = []

    class Recording(cls):  # type: ignore[valid-type,misc]
        def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
            self.opt = super().make_optimizer(model)
            return self.opt

    method = Recording(amnesiac.make_config("relabel", lr=0.05, max_steps=300, heal_steps=5))
    assert method.heal_schedule == "constant"
    data = UnlearnData(*forget8, None, None, None, 10)
    result = method.unlearn(
        tiny_model, data, callback=lambda _: lrs.append(method.opt.param_groups[0]["lr"])
    )
    assert result.forgotten and method._first_forgotten is not None
    assert result.steps >= method._first_forgotten + 5
    assert lrs == [0.05] * result.steps


@pytest.mark.parametrize("name", ["l2ul", "l2ul_adv", "l2ul_imp"])
def test_paper_preset_pins_every_setting(name: str) -> None:
    """A change of the defaults must never change what ``preset="paper"`` runs."""
    info = amnesiac.get_method(name)
    # the user's, or speed only
    free = {"seed", "objective", "eval_batch_size", "pgd_batch_size", "precision"}
    pinned = set(info.cls.presets["paper"])
    assert {f.name for f in dataclasses.fields(info.config_cls)} - pinned == free


def test_forget_term_escalates_until_first_forgotten_then_freezes(tiny_model, forget8) -> None:
    from amnesiac.methods.base import UnlearnData

    x, y = forget8
    data = UnlearnData(x, y, None, None, None, 10)
    # far too small a step to forget in 5 steps: the factor doubles every 2 steps, 1, 1, 2, 2, 4
    stuck = L2UL(amnesiac.make_config("l2ul", lr=1e-9, max_steps=5, stop="budget",
                                      forget_escalate_steps=2))  # fmt: skip
    assert not stuck.unlearn(tiny_model, data).forgotten
    assert stuck.escalation == 4.0
    # doubling every step until D_f is first forgotten at step s, then frozen through the heal
    method = L2UL(amnesiac.make_config("l2ul", forget_escalate_steps=1, heal_steps=20))
    result = method.unlearn(tiny_model, data)
    first = next(int(h["step"]) for h in result.history if h["forget_acc"] == 0.0)
    assert result.forgotten and result.steps > first
    assert method.escalation == 2.0 ** (first - 1)
    off = L2UL(amnesiac.make_config("l2ul", forget_escalate_steps=0, max_steps=3, stop="budget"))
    off.unlearn(tiny_model, data)
    assert off.escalation == 1.0


def test_the_stop_check_builds_no_autograd_graph(forget8) -> None:
    # the stop check only reads predictions: a forward pass under autograd would cost a
    # backward graph per step (and count as trained images in the benchmark's ImageCounter)
    from amnesiac.methods.result import UnlearnData
    from amnesiac.methods.status import forget_status

    seen: list[bool] = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.is_grad_enabled())
            return self.fc(x.flatten(1))

    x, y = forget8
    data = UnlearnData(x, y, None, None, None, 10)
    out = forget_status(Probe(), data, batch_size=4)
    assert seen == [False, False] and 0 <= out["forget_acc"] <= 100
