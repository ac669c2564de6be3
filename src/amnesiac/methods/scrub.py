"""``scrub``: teacher-student unlearning that moves away from the teacher on D_f and stays
with it on D_r (SCRUB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.methods.base import (
    StepConfig,
    UnlearnConfig,
    UnlearnData,
    Unlearner,
    alternating_schedule,
    register,
)
from amnesiac.ops.losses import distill_kl


@dataclass(frozen=True, kw_only=True)
class ScrubConfig(StepConfig):
    """Settings of ``scrub`` (defaults: the official code's large-scale CIFAR-10 settings,
    ``large_scale_unlearning.ipynb``: SGD, lr 5e-4, momentum 0.9, weight decay 5e-4).

    The run is ``rounds`` rounds (the official ``sgda_epochs``). In each of the first
    ``max_rounds`` (``msteps``) rounds, one pass over D_f in batches of ``forget_batch_size``
    takes max-steps: ``-KL(teacher || student)`` at ``temperature``. Every round then takes
    min-steps on retained batches of ``batch_size``: ``gamma * CE + alpha * KL(teacher ||
    student)``; the official code takes a whole pass over D_r, here ``retain_steps`` steps at
    most (0: a whole pass). The teacher is the original model, frozen.

    Attributes:
        rounds: Rounds of max- then min-steps (``sgda_epochs``).
        max_rounds: Rounds that take max-steps on D_f (``msteps``).
        forget_batch_size: Forget examples per max-step (``del_batch_size``).
        retain_steps: Min-steps per round at most (0: one pass over D_r).
        alpha: Weight of the distillation term of the min-steps.
        gamma: Weight of the cross-entropy term of the min-steps.
        temperature: Distillation temperature (``kd_T``).
    """

    lr: float = 5e-4
    weight_decay: float = 5e-4
    batch_size: int = 256
    max_steps: int = 100_000
    stop: Literal["forgotten", "budget"] = "budget"
    rounds: int = 3
    max_rounds: int = 2
    forget_batch_size: int = 512
    retain_steps: int = 0
    alpha: float = 0.001
    gamma: float = 0.99
    temperature: float = 4.0

    def problems(self) -> list[str]:
        out = super().problems()
        for name in ("rounds", "max_rounds", "retain_steps"):
            if getattr(self, name) < 0:
                out.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.forget_batch_size < 1:
            out.append(f"forget_batch_size must be >= 1, got {self.forget_batch_size}")
        if self.alpha < 0 or self.gamma < 0:
            out.append("alpha and gamma must be >= 0")
        if not self.temperature > 0:
            out.append(f"temperature must be > 0, got {self.temperature}")
        return out


@register
class Scrub(Unlearner):
    """SCRUB: the student (a copy of the model) alternates max-steps, which move its outputs on
    D_f away from the teacher's, with min-steps, which keep them on D_r.

    Its own goal is the retrained model's behaviour and its stop rule the round budget;
    ``stop="forgotten"`` stops at amnesiac's objective instead.
    """

    name = "scrub"
    config_cls = ScrubConfig
    reads = ("forget", "retain")
    objectives = ("misclassify",)
    forgets = False  # a round budget, not D_f misclassified
    fast_settings: ClassVar[dict[str, Any]] = {
        "lr": 5e-3,
        "rounds": 2,
        "retain_steps": 4,
        "batch_size": 32,
    }
    summary = "max-steps from the teacher on D_f, min-steps toward it on D_r (SCRUB)"
    reference = (
        "Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023, arXiv:2302.09880 "
        "(code: github.com/meghdadk/SCRUB, read at commit 98ffb11)"
    )
    config: ScrubConfig

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.teacher: nn.Module | None = None
        self.schedule: list[tuple[str, int]] = []

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        c = self.config
        self.teacher = original
        self.schedule = alternating_schedule(
            rounds=c.rounds, forget_rounds=c.max_rounds,
            n_forget=len(data.forget_x), forget_batch=c.forget_batch_size,
            n_retain=0 if data.retain_x is None else len(data.retain_x),
            retain_batch=c.batch_size, retain_cap=c.retain_steps,
        )  # fmt: skip

    def step_budget(self, data: UnlearnData) -> int:
        return len(self.schedule)

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        assert self.teacher is not None  # set in prepare
        c = self.config
        entry = self.schedule[step - 1]
        phase, x, y = self.round_batch(data, entry, c.forget_batch_size, c.batch_size)
        if phase == "forget":
            with torch.no_grad():
                teacher = self.teacher(x)
            kl = distill_kl(model(x), teacher, temperature=c.temperature)
            return {"loss": -kl, "forget_kl": kl}
        with torch.no_grad():
            teacher = self.teacher(x)
        out = model(x)
        kl = distill_kl(out, teacher, temperature=c.temperature)
        ce = F.cross_entropy(out, y)
        return {"loss": c.gamma * ce + c.alpha * kl, "retain_kl": kl, "retain_ce": ce}
