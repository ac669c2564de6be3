"""``bad_teacher``: distil D_r from the original model and D_f from a randomly initialised one."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from amnesiac.methods.base import (
    StepConfig,
    UnlearnConfig,
    UnlearnData,
    Unlearner,
    passes_to_steps,
    register,
)


@dataclass(frozen=True, kw_only=True)
class BadTeacherConfig(StepConfig):
    """Settings of ``bad_teacher`` (defaults: the official code's).

    The student starts from the original model and is trained with Adam (``lr``; ``momentum``
    and ``weight_decay`` are unused) for ``epochs`` passes over the unlearning set: D_f plus a
    random ``retain_fraction`` of D_r, shuffled together in batches of ``batch_size``.

    Attributes:
        epochs: Passes over the unlearning set (``max_steps`` caps the steps).
        retain_fraction: Share of the retained data in the unlearning set (the paper: 30%).
        temperature: Softmax temperature of both teachers and the student (the paper: 1).
    """

    lr: float = 1e-4
    batch_size: int = 256
    max_steps: int = 100_000
    epochs: float = 1.0
    retain_fraction: float = 0.3
    temperature: float = 1.0
    stop: Literal["forgotten", "budget"] = "budget"

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.epochs > 0:
            out.append(f"epochs must be > 0, got {self.epochs}")
        if not 0 <= self.retain_fraction <= 1:
            out.append(f"retain_fraction must be in [0, 1], got {self.retain_fraction}")
        if not self.temperature > 0:
            out.append(f"temperature must be > 0, got {self.temperature}")
        return out

    def unused_settings(self) -> dict[str, str]:
        reason = "the method's Adam optimizer (the official code's) does not take it"
        return {
            **super().unused_settings(),
            **{
                n: reason
                for n in (
                    "momentum",
                    "weight_decay",
                )
            },
        }


def random_init_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every module that has ``reset_parameters`` re-initialised from
    ``seed`` (the global random state is left as it was); in eval mode, frozen."""
    bad = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in bad.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    for p in bad.parameters():
        p.requires_grad_(False)
    return bad.eval()


@register
class BadTeacher(Unlearner):
    """Student-teacher unlearning with a competent and an incompetent teacher.

    Each example of the unlearning set is distilled toward a teacher: the original model for
    retained examples, a randomly initialised copy of the architecture for forget examples
    (``KL(teacher || student)`` at ``temperature``). The forget instances end up answered like by
    a model that never learned anything, the rest like by the original. Its own goal is the
    retrained model's behaviour, with one pass as its stop rule; ``stop="forgotten"`` stops at
    amnesiac's objective instead.
    """

    name = "bad_teacher"
    config_cls = BadTeacherConfig
    reads = ("forget", "retain")
    objectives = ("misclassify",)
    forgets = False  # one pass; the forget instances get the random teacher's answer
    fast_settings: ClassVar[dict[str, Any]] = {"lr": 1e-3, "batch_size": 32, "epochs": 1.0}
    summary = "distil D_r from the model and D_f from a random one (incompetent teacher)"
    reference = (
        "Chundawat et al., Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks "
        "Using an Incompetent Teacher, AAAI 2023, arXiv:2205.08096 "
        "(code: github.com/vikram2000b/bad-teaching-unlearning, read at commit f1aa988)"
    )
    config: BadTeacherConfig

    def __init__(self, config: UnlearnConfig) -> None:
        super().__init__(config)
        self.good: nn.Module | None = None
        self.bad: nn.Module | None = None
        self.pool_x = torch.empty(0)
        self.pool_forget = torch.empty(0, dtype=torch.bool)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        self.good = original
        self.bad = random_init_copy(original, self.config.seed)
        n_retain = 0 if data.retain_x is None else len(data.retain_x)
        keep = round(self.config.retain_fraction * n_retain)
        parts = [data.forget_x]
        if keep and data.retain_x is not None:
            parts.append(data.retain_x[self.sample(n_retain, keep, data.retain_x.device)])
        self.pool_x = torch.cat(parts)
        self.pool_forget = torch.arange(len(self.pool_x), device=self.pool_x.device) < len(
            data.forget_x
        )

    def step_budget(self, data: UnlearnData) -> int:
        return passes_to_steps(len(self.pool_x), self.config.batch_size, self.config.epochs)

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        assert self.good is not None and self.bad is not None  # set in prepare
        c = self.config
        idx = self.epoch_batch("pool", len(self.pool_x), c.batch_size, step, self.pool_x.device)
        x, is_forget = self.pool_x[idx], self.pool_forget[idx]
        with torch.no_grad():
            good = (self.good(x).float() / c.temperature).softmax(1)
            bad = (self.bad(x).float() / c.temperature).softmax(1)
            target = torch.where(is_forget[:, None], bad, good)
        log_p = (model(x).float() / c.temperature).log_softmax(1)
        kl = torch.nn.functional.kl_div(log_p, target, reduction="batchmean")
        return {"loss": kl, "distill": kl, "forget_share": is_forget.float().mean()}
