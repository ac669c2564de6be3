"""The settings every method has (:class:`UnlearnConfig`) and those of methods that take update
steps (:class:`StepConfig`); a method's own settings class derives from one of them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from amnesiac._choices import choice_problems
from amnesiac.errors import InvalidSettingsError
from amnesiac.ops.precision import Precision

Objective = Literal["misclassify", "relabel"]


@dataclass(frozen=True, kw_only=True)
class UnlearnConfig:
    """Settings every method has. Subclasses add their own fields; methods that take update
    steps use :class:`StepConfig`.

    Attributes:
        seed: Seed of every random draw of the run.
        objective: ``"misclassify"`` (each forget instance must leave its true class) or
            ``"relabel"`` (each must be predicted as its target label).
        precision: ``"fp32"``, or ``"bf16"``: the work before the steps (e.g. adversarial
            examples, ``retrain``'s training; MAS importance stays float32) and every step's
            forward and backward pass run under bfloat16 autocast (:func:`torch.autocast`), and
            so does the forget-set check after each step; the weights and the optimizer stay in
            float32, and a check that would start the heal or end the run is redone in float32
            (:func:`amnesiac.methods.status.stop_check`), so "forgotten" is always decided in
            full precision. A ResNet-20 pass is about 3x faster on a CPU with AMX
            (the speed section of ``benchmarks/RESULTS.md``), slower on CPUs without bfloat16
            instructions.
        eval_batch_size: Batch size of the forget-set check (after every step, and at the end).
    """

    seed: int = 0
    objective: Objective = "misclassify"
    precision: Precision = "fp32"
    eval_batch_size: int = 1024

    #: Settings that act only when the run has anchors (``surrogate=`` images); a run without
    #: them is the same whatever their values.
    ANCHORED_ONLY: ClassVar[tuple[str, ...]] = ()
    #: Settings that act only when the run has no anchors (an anchored setting takes their
    #: place); a run with anchors is the same whatever their values.
    FORGET_ONLY: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidSettingsError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every problem with these settings (empty when valid). Subclasses extend the list."""
        out = choice_problems(self)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                out.append(f"{f.name} must be finite, got {value}")
        if self.eval_batch_size < 1:
            out.append(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        return out

    def unused_settings(self) -> dict[str, str]:
        """Settings that do nothing under the other values, each with the reason:
        :func:`amnesiac.make_config` refuses one given explicitly at another value than the
        default (a flag that does nothing is a bug a user will find)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class StepConfig(UnlearnConfig):
    """Settings of methods that take update steps (every registered method but ``retrain``).

    Attributes:
        lr: Learning rate of the optimizer.
        max_steps: Step budget: the run stops after this many optimizer steps at the latest.
        batch_size: Batch size per step (of the forget set, unless the method says otherwise).
        stop: ``"forgotten"`` stops as soon as every forget instance meets the objective (checked
            after every step, in eval mode); ``"budget"`` always runs ``max_steps`` steps.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        bn_mode: BatchNorm during the update steps: ``"train"`` (batch statistics, running
            statistics updated; the official L2UL code) or ``"eval"`` (running statistics used
            and kept).
        heal_steps: With ``stop="forgotten"``, steps kept after every instance first meets the
            objective, so the preservation terms can repair the rest; the run ends only at a
            step where the objective holds.
        heal_patience: With ``heal_steps``, end the heal once it stops helping: every
            ``heal_check_every`` steps of the heal where the objective holds, the method's heal
            signal is measured (by default the mean loss of those steps: in the heal the forget
            term is near zero, so it is the preservation terms'); once ``heal_patience`` steps
            have passed since the best check (whether or not the objective holds at that step),
            the heal ends, and the run returns to the model of that best check, where it held
            (0: no checks; the heal runs ``heal_steps``).
        heal_check_every: Steps between heal checks (``heal_patience``).
        heal_min_gain: The fraction by which a check's signal must fall below the best so far
            to become the new best (0: any fall).
        shrink_steps: When the run ends with the objective met, bisection steps of a final
            shrink of the update toward the original weights: the smallest fraction ``a`` for
            which ``θ0 + a (θ - θ0)`` still meets the objective is kept
            (:func:`amnesiac.ops.shrink_update`; 0 turns it off).
        clip_grad_norm: Largest L2 norm of a step's gradient over all parameters (0: no limit);
            a larger one is scaled down to it (:func:`torch.nn.utils.clip_grad_norm_`), so a
            step cannot be large because the inputs are unusual. The history records the norm
            before clipping as ``grad_norm``.
        rescue_clip_grad_norm: If the loss or a weight becomes NaN or infinite while the
            gradient is unbounded (``clip_grad_norm=0``) or bounded above this, the run starts
            over once, from the original model and the same seed, with ``clip_grad_norm`` set to
            this: a model the defaults were not made for (e.g. an overconfident one, whose
            gradients grow from step to step) ends with a bounded run instead of an error. The
            result says so (:attr:`~amnesiac.UnlearnResult.rescued_from`) and its ``config``
            has the bound it ran with. A run that does not diverge is unchanged by it. 0: raise
            :class:`~amnesiac.DivergenceError` at once.
    """

    lr: float = 1e-3
    max_steps: int = 1000
    batch_size: int = 32
    stop: Literal["forgotten", "budget"] = "forgotten"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    bn_mode: Literal["train", "eval"] = "train"
    heal_steps: int = 0
    heal_patience: int = 0
    heal_check_every: int = 10
    heal_min_gain: float = 0.0
    shrink_steps: int = 0
    clip_grad_norm: float = 0.0
    rescue_clip_grad_norm: float = 20.0

    def unused_settings(self) -> dict[str, str]:
        out = super().unused_settings()
        if self.heal_patience == 0:
            reason = "there are no heal checks; set heal_patience > 0"
            out |= {n: reason for n in ("heal_check_every", "heal_min_gain")}
        return out

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.lr > 0:
            out.append(f"lr must be > 0, got {self.lr}")
        for name in (
            "max_steps",
            "heal_steps",
            "heal_patience",
            "shrink_steps",
            "momentum",
            "weight_decay",
        ):
            if getattr(self, name) < 0:
                out.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.clip_grad_norm < 0:
            out.append(f"clip_grad_norm must be >= 0 (0: no limit), got {self.clip_grad_norm}")
        if not 0 <= self.heal_min_gain < 1:
            out.append(f"heal_min_gain must be in [0, 1), got {self.heal_min_gain}")
        if self.rescue_clip_grad_norm < 0:
            out.append(
                "rescue_clip_grad_norm must be >= 0 (0: no rescue), got "
                f"{self.rescue_clip_grad_norm}"
            )
        for name in ("batch_size", "heal_check_every"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        return out
