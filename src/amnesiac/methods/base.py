"""The :class:`Unlearner` template, its settings base class, its result, and the method registry.

A method subclasses :class:`Unlearner`, declares a frozen settings dataclass derived from
:class:`UnlearnConfig`, and writes only what is the method: :meth:`Unlearner.prepare` (work done
once before the first step, e.g. adversarial examples or weight importance) and
:meth:`Unlearner.loss` (one step's loss with named parts). :meth:`Unlearner.unlearn` owns the rest:
copying the model (the caller's model is never mutated), device and dtype, seeding, train/eval
modes, the step loop, the stop rule, timing, progress, divergence checks and cleanup.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from amnesiac._choices import choice_problems
from amnesiac._names import suggest
from amnesiac.errors import DivergenceError, InvalidSettingsError, UnknownNameError
from amnesiac.ops.layout import to_channels_last, to_contiguous
from amnesiac.ops.precision import Precision, autocast
from amnesiac.ops.shrink import shrink_update

logger = logging.getLogger(__name__)

Objective = Literal["misclassify", "relabel"]


@dataclass(frozen=True, kw_only=True)
class UnlearnConfig:
    """Settings every method shares. Subclasses add their own fields.

    Attributes:
        lr: Learning rate of the optimizer.
        max_steps: Step budget: the run stops after this many optimizer steps at the latest.
        batch_size: Forget-set batch size per step.
        seed: Seed of every random draw of the run.
        objective: ``"misclassify"`` (each forget instance must leave its true class) or
            ``"relabel"`` (each must be predicted as its target label).
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
        eval_batch_size: Batch size of the per-step forget-set check.
        shrink_steps: When the run ends with the objective met, bisection steps of a final
            shrink of the update toward the original weights: the smallest fraction ``a`` for
            which ``θ0 + a (θ - θ0)`` still meets the objective is kept
            (:func:`amnesiac.ops.shrink_update`; 0 turns it off).
        clip_grad_norm: Largest L2 norm of a step's gradient over all parameters (0: no limit);
            a larger one is scaled down to it (:func:`torch.nn.utils.clip_grad_norm_`), so a
            step cannot be large because the inputs are unusual. The history records the norm
            before clipping as ``grad_norm``.
        precision: ``"fp32"``, or ``"bf16"``: the work before the steps (e.g. adversarial
            examples, ``retrain``'s training; MAS importance stays float32) and every step's
            forward and backward pass run under bfloat16 autocast (:func:`torch.autocast`); the
            weights, the optimizer and the stop check stay in float32, so "forgotten" is always
            decided in full precision. A ResNet-20 pass is about 3x faster on a CPU with AMX
            (the speed section of ``benchmarks/RESULTS.md``), slower on CPUs without bfloat16
            instructions.
    """

    lr: float = 1e-3
    max_steps: int = 1000
    batch_size: int = 32
    seed: int = 0
    objective: Objective = "misclassify"
    stop: Literal["forgotten", "budget"] = "forgotten"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    bn_mode: Literal["train", "eval"] = "train"
    heal_steps: int = 0
    eval_batch_size: int = 1024
    shrink_steps: int = 0
    clip_grad_norm: float = 0.0
    precision: Precision = "fp32"

    #: Settings added after release, each with the value that reproduces the behaviour from
    #: before it existed (a recorded run without the setting ran with that value).
    added_settings: ClassVar[dict[str, Any]] = {"clip_grad_norm": 0.0}

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
        if not self.lr > 0:
            out.append(f"lr must be > 0, got {self.lr}")
        if self.heal_steps < 0:
            out.append(f"heal_steps must be >= 0, got {self.heal_steps}")
        if self.clip_grad_norm < 0:
            out.append(f"clip_grad_norm must be >= 0 (0: no limit), got {self.clip_grad_norm}")
        if self.shrink_steps < 0:
            out.append(f"shrink_steps must be >= 0, got {self.shrink_steps}")
        if self.max_steps < 0:
            out.append(f"max_steps must be >= 0, got {self.max_steps}")
        if self.batch_size < 1:
            out.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.eval_batch_size < 1:
            out.append(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.momentum < 0 or self.weight_decay < 0:
            out.append(
                f"momentum and weight_decay must be >= 0, got {self.momentum}, {self.weight_decay}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class UnlearnResult:
    """What :func:`amnesiac.unlearn` returns.

    Attributes:
        model: The unlearned model (a new object, in eval mode).
        method: Registry name of the method.
        config: The resolved settings.
        steps: Optimizer steps taken.
        stopped_by: ``"forgotten"`` (the stop rule fired), ``"max_steps"`` (the step budget ran
            out) or ``"no_steps"`` (``max_steps=0``).
        forgotten: Whether every forget instance meets the objective at the end.
        history: One dict per step: the step number, the named losses and ``forget_acc`` (percent
            of forget instances still predicted as their true label) and, for ``relabel``,
            ``target_acc``.
        seconds: Wall time by phase, e.g. ``{"adversarial": .., "importance": .., "unlearn": ..,
            "total": ..}``.
        update_fraction: Fraction of the update kept by ``shrink_steps`` (1.0 without it).
    """

    model: nn.Module
    method: str
    config: dict[str, Any]
    steps: int
    stopped_by: str
    forgotten: bool
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    update_fraction: float = 1.0


@dataclass
class UnlearnData:
    """The tensors a run works on, on the model's device and dtype.

    Attributes:
        forget_x: Forget images ``(K, C, H, W)`` in [0, 1].
        forget_y: True labels ``(K,)``.
        targets: Relabel targets ``(K,)`` (``None`` for ``misclassify``).
        retain_x: Retained images, when the method reads them and they were given.
        retain_y: Retained labels.
        num_classes: Number of classes of the model.
        surrogate_x: Unlabeled in-domain images (never the training set) a method may hold
            the model's behaviour on, when the caller has them and the method accepts them.
    """

    forget_x: Tensor
    forget_y: Tensor
    targets: Tensor | None
    retain_x: Tensor | None
    retain_y: Tensor | None
    num_classes: int
    surrogate_x: Tensor | None = None


class Unlearner:
    """Base class of every unlearning method. See the module docstring.

    Subclasses set the class attributes and implement :meth:`loss` (and usually :meth:`prepare`).

    Attributes:
        name: Registry key (also the file name of the method).
        config_cls: The settings dataclass.
        reads: Data the method needs: ``("forget",)`` or ``("forget", "retain")``.
        accepts: Optional inputs the method uses when given, e.g. ``("surrogate",)``:
            unlabeled in-domain images passed as ``surrogate=`` to :func:`amnesiac.unlearn`.
        summary: One line for :func:`amnesiac.list_methods`.
        reference: Paper the method comes from.
    """

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[UnlearnConfig]] = UnlearnConfig
    reads: ClassVar[tuple[str, ...]] = ("forget",)
    accepts: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    objectives: ClassVar[tuple[str, ...]] = ("misclassify", "relabel")
    #: False for methods that do all their work in :meth:`prepare` (``retrain``).
    iterative: ClassVar[bool] = True
    #: Named settings bundles, e.g. ``{"paper": {...}}``, applied under explicit settings.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: UnlearnConfig) -> None:
        if not isinstance(config, self.config_cls):
            raise InvalidSettingsError(
                f"{type(self).__name__} takes {self.config_cls.__name__}, "
                f"got {type(config).__name__}"
            )
        if config.objective not in self.objectives:
            raise InvalidSettingsError(
                f"method {self.name!r} supports objectives {list(self.objectives)}, "
                f"not {config.objective!r}"
            )
        self.config = config
        self._first_forgotten: int | None = None
        self.seconds: dict[str, float] = {}
        self.generator = torch.Generator().manual_seed(config.seed)

    # ----------------------------------------------------------------- what a method writes
    def prepare(self, model: nn.Module, original: nn.Module, data: UnlearnData) -> None:
        """Work done once before the first step (time it with :meth:`phase`).

        It runs in float32; forward passes that should run at the config's ``precision`` (e.g.
        attacks on ``original``) go inside :meth:`autocast`. Training belongs outside it: autocast
        keeps its low-precision copies of the weights until its region ends.
        """

    def autocast(self, data: UnlearnData) -> contextlib.AbstractContextManager[Any]:
        """The autocast context of the config's ``precision`` on ``data``'s device."""
        return autocast(self.config.precision, data.forget_x.device.type)

    def loss(self, model: nn.Module, data: UnlearnData, step: int) -> dict[str, Tensor]:
        """One step's loss: a dict with a ``"loss"`` key and named parts to log."""
        raise NotImplementedError

    def backward(self, model: nn.Module, parts: dict[str, Tensor]) -> None:
        """Fill the gradients of ``model``'s parameters from this step's ``parts`` (from
        :meth:`loss`); the default differentiates ``parts["loss"]``."""
        parts["loss"].backward()

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer of the update steps: SGD with the config's momentum and weight decay."""
        c = self.config
        return torch.optim.SGD(
            model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
        )

    def is_done(self, forgotten: bool, step: int) -> bool:
        """Whether to stop after ``step`` (1-based) given whether the objective is met.

        With ``stop="forgotten"``: at the first step where the objective holds, or, with
        ``heal_steps``, at the first step at least ``heal_steps`` after that where it holds.
        """
        if self.config.stop != "forgotten" or not forgotten:
            return False
        if self._first_forgotten is None:
            self._first_forgotten = step
        return step - self._first_forgotten >= self.config.heal_steps

    def begin_steps(self, model: nn.Module) -> nn.Module:
        """Return the module to optimize (``model`` itself unless a method trains from scratch)."""
        return model

    # ----------------------------------------------------------------- helpers for methods
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a block and add it to ``seconds[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def forget_batch(self, data: UnlearnData, step: int) -> Tensor:
        """Indices of step ``step``'s forget batch: sequential and cycled, like an unshuffled
        loader (``batch_size`` at most ``K``)."""
        k = len(data.forget_x)
        start = (step - 1) * self.config.batch_size
        size = min(self.config.batch_size, k)
        return torch.arange(start, start + size, device=data.forget_x.device) % k

    def retain_batch(self, data: UnlearnData, size: int) -> tuple[Tensor, Tensor]:
        """A random retain batch of ``size`` drawn with the run's generator."""
        if data.retain_x is None or data.retain_y is None:
            raise InvalidSettingsError(f"method {self.name!r} needs retain data; pass retain=")
        idx = self.sample(len(data.retain_x), size, data.retain_x.device)
        return data.retain_x[idx], data.retain_y[idx]

    def sample(self, n: int, size: int, device: torch.device) -> Tensor:
        """``size`` indices drawn without replacement from ``range(n)`` with the run's generator."""
        return torch.randperm(n, generator=self.generator)[: min(size, n)].to(device)

    # ----------------------------------------------------------------- the template
    def unlearn(
        self,
        model: nn.Module,
        data: UnlearnData,
        *,
        progress: bool = False,
        callback: Callable[[dict[str, float]], None] | None = None,
    ) -> UnlearnResult:
        """Run the method on a copy of ``model``; see :func:`amnesiac.unlearn`."""
        cfg = self.config
        t_start = time.perf_counter()
        self.seconds = {}
        self._first_forgotten = None
        original = copy.deepcopy(model).eval()
        for p in original.parameters():
            p.requires_grad_(False)
        work = copy.deepcopy(model)
        for p in work.parameters():
            p.requires_grad_(True)
            p.grad = None
        work.eval()
        # speed only: both copies store their convolutions channels-last while the method runs
        probe = data.forget_x[:1]
        to_channels_last(original, probe)
        to_channels_last(work, probe)
        self.prepare(work, original, data)
        work = self.begin_steps(work)
        history: list[dict[str, float]] = []
        steps = 0
        stats = forget_status(work, data, batch_size=cfg.eval_batch_size)
        stopped_by = "no_steps" if cfg.max_steps == 0 else "max_steps"
        if not self.iterative:
            stopped_by = "complete"
        elif cfg.max_steps > 0 and self.is_done(stats["forgotten"] == 1.0, 0):
            stopped_by = "forgotten"
        else:
            opt = self.make_optimizer(work)
            bar = tqdm(
                total=cfg.max_steps, disable=not progress, desc=self.name, unit="step", leave=False
            )
            try:
                with self.phase("unlearn"):
                    for step in range(1, cfg.max_steps + 1):
                        set_train_mode(work, bn_train=cfg.bn_mode == "train")
                        with self.autocast(data):
                            parts = self.loss(work, data, step)
                        loss = parts["loss"]
                        if not torch.isfinite(loss):
                            raise DivergenceError(
                                f"{self.name}: loss became {loss.item()} at step {step}; the "
                                "input model is untouched. Lower lr or raise the regularization"
                            )
                        opt.zero_grad(set_to_none=True)
                        self.backward(work, parts)
                        if cfg.clip_grad_norm > 0:
                            parts["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                                work.parameters(), cfg.clip_grad_norm
                            )
                        opt.step()
                        steps = step
                        with self.phase("stop_check"):
                            stats = forget_status(work, data, batch_size=cfg.eval_batch_size)
                        record = {"step": float(step)}
                        record.update({k: float(v.detach()) for k, v in parts.items()})
                        record.update({k: v for k, v in stats.items() if k != "forgotten"})
                        history.append(record)
                        if callback is not None:
                            callback(record)
                        bar.update()
                        if step % 10 == 0 or step == 1:
                            bar.set_postfix(
                                loss=f"{record['loss']:.3f}",
                                forget_acc=f"{stats['forget_acc']:.1f}",
                            )
                        if self.is_done(stats["forgotten"] == 1.0, step):
                            stopped_by = "forgotten"
                            break
            finally:
                bar.close()
                work.zero_grad(set_to_none=True)
        work.eval()
        fraction = 1.0
        if self.iterative and cfg.shrink_steps > 0 and steps > 0 and stats["forgotten"] == 1.0:
            with self.phase("shrink"):
                work, fraction = shrink_update(
                    original,
                    work,
                    lambda m: (
                        forget_status(m, data, batch_size=cfg.eval_batch_size)["forgotten"] == 1.0
                    ),
                    steps=cfg.shrink_steps,
                )
        to_contiguous(work)
        for p in work.parameters():
            p.requires_grad_(True)
        check_finite(work, self.name)
        # the stop check is part of the update loop; report it inside "unlearn" too
        self.seconds["total"] = time.perf_counter() - t_start
        return UnlearnResult(
            model=work,
            method=self.name,
            config=cfg.to_dict(),
            steps=steps,
            stopped_by=stopped_by,
            forgotten=stats["forgotten"] == 1.0,
            history=history,
            seconds=dict(self.seconds),
            update_fraction=fraction,
        )


def set_train_mode(model: nn.Module, *, bn_train: bool) -> None:
    """Put ``model`` in train mode, with BatchNorm layers in eval mode unless ``bn_train``."""
    model.train()
    if not bn_train:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def forget_status(model: nn.Module, data: UnlearnData, *, batch_size: int) -> dict[str, float]:
    """Forget-set accuracy in percent (and target accuracy for relabel) in eval mode.

    ``forgotten`` is 1.0 when every instance meets the objective: predicted as its target
    (relabel) or as anything but its true label (misclassify).
    """
    was_training = model.training
    model.eval()
    try:
        pred = torch.cat(
            [
                model(data.forget_x[i : i + batch_size]).argmax(1)
                for i in range(0, len(data.forget_x), batch_size)
            ]
        )
    finally:
        model.train(was_training)
    out = {"forget_acc": float((pred == data.forget_y).float().mean() * 100)}
    if data.targets is not None:
        hit = pred == data.targets
        out["target_acc"] = float(hit.float().mean() * 100)
        out["forgotten"] = float(bool(hit.all()))
    else:
        out["forgotten"] = float(bool((pred != data.forget_y).all()))
    return out


def check_finite(model: nn.Module, name: str) -> None:
    """Raise :class:`DivergenceError` if any parameter or buffer is NaN or infinite."""
    for key, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise DivergenceError(
                f"{name}: {key} became NaN or infinite; the input model is untouched. "
                "Lower lr or raise the regularization"
            )


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MethodInfo:
    """Registry entry of a method."""

    name: str
    cls: type[Unlearner]
    config_cls: type[UnlearnConfig]
    reads: tuple[str, ...]
    summary: str
    reference: str
    accepts: tuple[str, ...] = ()

    @property
    def needs_retain(self) -> bool:
        return "retain" in self.reads


_REGISTRY: dict[str, MethodInfo] = {}


def register(cls: type[Unlearner]) -> type[Unlearner]:
    """Class decorator adding a method to the registry; duplicate names are refused."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(
            f"method {cls.name!r} is already registered by {_REGISTRY[cls.name].cls.__name__}"
        )
    _REGISTRY[cls.name] = MethodInfo(
        cls.name, cls, cls.config_cls, cls.reads, cls.summary, cls.reference, cls.accepts
    )
    return cls


def get_method(name: str) -> MethodInfo:
    """The registry entry of ``name``; unknown names get the valid list and the closest match."""
    if name not in _REGISTRY:
        raise UnknownNameError(suggest(name, _REGISTRY, "method"))
    return _REGISTRY[name]


def accepting(optional_input: str) -> list[str]:
    """Names of the registered methods that use ``optional_input`` (e.g. ``"surrogate"``)."""
    return sorted(name for name, info in _REGISTRY.items() if optional_input in info.accepts)


def registered() -> dict[str, MethodInfo]:
    """All registered methods by name."""
    return dict(_REGISTRY)
