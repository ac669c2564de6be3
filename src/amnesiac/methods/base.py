"""The :class:`Unlearner` template (settings: :mod:`amnesiac.methods.settings`; registry:
:mod:`amnesiac.methods.registry`; its data and result: :mod:`amnesiac.methods.result`; all
re-exported here).

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
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from amnesiac.errors import DivergenceError, InvalidSettingsError
from amnesiac.methods.registry import (
    MethodInfo,
    accepting,
    data_parallel_methods,
    forget_only_cost,
    get_method,
    register,
    registered,
)
from amnesiac.methods.result import RunState, UnlearnData, UnlearnResult
from amnesiac.methods.sampling import BatchSampling
from amnesiac.methods.schedule import alternating_schedule, heal_lr_factor, passes_to_steps
from amnesiac.methods.settings import Objective, StepConfig, UnlearnConfig
from amnesiac.methods.status import (
    check_finite,
    forget_logits,
    forget_status,
    rescue,
    set_train_mode,
    status_of,
    stop_check,
)
from amnesiac.ops.layout import to_channels_last, to_contiguous
from amnesiac.ops.precision import autocast
from amnesiac.ops.shrink import shrink_update

__all__ = [
    "MethodInfo",
    "Objective",
    "StepConfig",
    "UnlearnConfig",
    "UnlearnData",
    "UnlearnResult",
    "Unlearner",
    "accepting",
    "alternating_schedule",
    "data_parallel_methods",
    "forget_only_cost",
    "get_method",
    "passes_to_steps",
    "register",
    "registered",
]


class Unlearner(BatchSampling):
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
    #: Whether the method trains each instance toward a target class even when the objective
    #: is ``misclassify`` (``relabel``: the runner-up class), so a report shows the targets.
    trains_to_targets: ClassVar[bool] = False
    #: False for methods that do all their work in :meth:`prepare` (``retrain``).
    iterative: ClassVar[bool] = True
    #: Named settings bundles, e.g. ``{"paper": {...}}``, applied under explicit settings.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Whether a run that ends normally has D_f meet the objective (``False`` for methods
    #: that forget only as far as the retained data implies: ``retrain``, ``finetune``).
    forgets: ClassVar[bool] = True
    #: Settings under which the method runs in seconds on a small model and forget set, and
    #: still forgets (:func:`amnesiac.testing.check_method` runs it under them).
    fast_settings: ClassVar[dict[str, Any]] = {}
    #: For methods that accept anchors (``surrogate``): what a run without them was measured
    #: to cost on the benchmark, as ``(k, D_test drop in points)`` pairs, so a caller can say
    #: what forget-only means at its k (:func:`forget_only_cost`).
    forget_only_cost: ClassVar[tuple[tuple[int, float], ...]] = ()
    #: Whether the method trains data-parallel under torchrun (:func:`amnesiac.train_classifier`
    #: in a process group), so that several processes share its work instead of repeating it.
    data_parallel: ClassVar[bool] = False

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
        self._history: list[dict[str, float]] = []
        self._perms: dict[str, list[Tensor]] = {}
        #: The forget-set status after the last step (:func:`forget_status`), for stop rules.
        self.status: dict[str, float] = {}
        #: The forget set's logits (float32) at the model the next step starts from, from the
        #: stop check (:func:`stop_check`); ``None`` outside a run.
        self.forget_logits: Tensor | None = None
        #: Learning rate and heal settings, unless :meth:`prepare` sets others.
        self.lr: float = getattr(config, "lr", 0.0)
        self.heal_steps: int = getattr(config, "heal_steps", 0)
        self.heal_schedule: str = getattr(config, "heal_schedule", "constant")
        self.heal_patience: int = getattr(config, "heal_patience", 0)
        self.heal_check_every: int = getattr(config, "heal_check_every", 10)
        self.heal_min_gain: float = getattr(config, "heal_min_gain", 0.0)
        #: The best heal check so far: its signal, its step and the model's state there.
        self._best: tuple[float, int, dict[str, Tensor]] | None = None
        self._model: nn.Module | None = None  # the model the steps update, during a run
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
        """SGD at :attr:`lr` with the config's momentum and weight decay."""
        c = self.step_config
        return torch.optim.SGD(
            model.parameters(), lr=self.lr, momentum=c.momentum, weight_decay=c.weight_decay
        )

    def step_budget(self, data: UnlearnData) -> int:
        """The steps the run may take: ``max_steps``, or fewer where the method's own schedule
        is shorter (e.g. passes over its data); called after :meth:`prepare`."""
        return self.step_config.max_steps

    def stop_label(self) -> str:
        """What :attr:`UnlearnResult.stopped_by` says when :meth:`is_done` ends the run:
        ``"forgotten"``, or ``"rule"`` for a method whose own stop rule (not the objective)
        decides under ``stop="budget"``."""
        return "forgotten" if self.step_config.stop == "forgotten" else "rule"

    def is_done(self, forgotten: bool, step: int) -> bool:
        """Whether to stop after ``step`` (1-based) given whether the objective is met: with
        ``stop="forgotten"``, at the first step where the objective holds, or, with
        ``heal_steps``, at the first step at least ``heal_steps`` after that where it holds;
        with ``heal_patience``, earlier, once :meth:`heal_signal` has not improved for
        ``heal_patience`` steps, whether or not the objective holds at that step (the run then
        returns to the model of its best check, where it held).
        """
        c = self.step_config
        best = self._best
        stale = best is not None and step - best[1] >= self.heal_patience
        if c.stop != "forgotten" or not forgotten:
            return stale  # the best check (D_f forgotten there) is what the run hands back
        if self._first_forgotten is None:
            self._first_forgotten = step
        healed = step - self._first_forgotten
        if self._heal_check_due(healed) and self._model is not None:
            signal = self.heal_signal(self._model, self.heal_check_every)
            if self._history:
                self._history[-1]["heal_signal"] = signal
            if best is None or signal < best[0] * (1.0 - self.heal_min_gain):
                state = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
                self._best = (signal, step, state)
            elif stale:
                return True
        return healed >= self.heal_steps

    def heal_signal(self, model: nn.Module, steps: int) -> float:
        """What a heal check judges ``model`` by (lower is better): by default the mean loss of
        the last ``steps`` steps (in the heal the forget term is near zero, so it is the
        preservation terms'), 0 before the first step, where the model is the original one (a
        forget set already misclassified then makes the original the best check). A method may
        measure better (``l2ul``: its anchors)."""
        losses = [r["loss"] for r in self._history[-steps:]]
        return sum(losses) / max(len(losses), 1)

    def _heal_check_due(self, healed: int) -> bool:
        """Whether ``healed`` steps into the heal (0: where it starts) the heal is checked."""
        if self.heal_patience == 0:
            return False
        return healed % self.heal_check_every == 0 or healed >= self.heal_steps

    def _decisive(self, step: int) -> bool:
        """Whether the objective met after ``step`` would start the heal or end the run."""
        c, first = self.step_config, self._first_forgotten
        if c.stop != "forgotten":
            return False  # no decision rests on it; the run's end is checked in float32
        if first is None or step - first >= self.heal_steps:
            return True
        return self._heal_check_due(step - first)

    def _heal_lr(self, opt: torch.optim.Optimizer, step: int) -> None:
        """In the heal, the next step's learning rate by ``heal_schedule`` (unless constant)."""
        if self.heal_schedule != "constant" and (first := self._first_forgotten) is not None:
            factor = heal_lr_factor(step - first, self.heal_steps, self.heal_schedule)
            for group in opt.param_groups:
                group["lr"] = self.lr * factor

    # ----------------------------------------------------------------- helpers for methods
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a block and add it to ``seconds[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    # ----------------------------------------------------------------- the template
    def unlearn(
        self,
        model: nn.Module,
        data: UnlearnData,
        *,
        progress: bool = False,
        callback: Callable[[dict[str, float]], None] | None = None,
    ) -> UnlearnResult:
        """Run the method on a copy of ``model``; see :func:`amnesiac.unlearn`.

        A run that diverges with its gradient unbounded (or bounded above the settings'
        ``rescue_clip_grad_norm``) is redone once by a fresh instance with ``clip_grad_norm`` at
        that bound (:attr:`UnlearnResult.rescued_from` says so); ``callback`` sees both runs.
        """
        t_start = time.perf_counter()
        try:
            return self._run(model, data, progress, callback)
        except DivergenceError as e:
            return rescue(self, e, model, data, progress=progress, callback=callback, start=t_start)

    def _run(
        self,
        model: nn.Module,
        data: UnlearnData,
        progress: bool,
        callback: Callable[[dict[str, float]], None] | None,
    ) -> UnlearnResult:
        """One run of the template (:meth:`unlearn` without the rescue)."""
        t_start = time.perf_counter()
        self.seconds = {}
        self._first_forgotten, self._best = None, None
        self._history = []
        self._perms = {}
        self.forget_logits = None
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
        if self.iterative:
            work, run = self._steps(work, original, data, progress, callback)
        else:
            stats = forget_status(work, data, batch_size=self.config.eval_batch_size)
            run = RunState(stopped_by="complete", forgotten=stats["forgotten"] == 1.0)
        work.eval()
        to_contiguous(work)
        for p in work.parameters():
            p.requires_grad_(True)
        check_finite(work, self.name)
        # the stop check is part of the update loop; report it inside "unlearn" too
        self.seconds["total"] = time.perf_counter() - t_start
        return UnlearnResult(
            model=work,
            method=self.name,
            config=self.config.to_dict(),
            steps=run.steps,
            stopped_by=run.stopped_by,
            forgotten=run.forgotten,
            history=run.history,
            seconds=dict(self.seconds),
            update_fraction=run.fraction,
        )

    @property
    def step_config(self) -> StepConfig:
        """The settings of the update steps (methods that take steps have a :class:`StepConfig`)."""
        if not isinstance(self.config, StepConfig):
            raise TypeError(
                f"method {self.name!r} takes update steps, so its settings class must derive "
                f"from StepConfig, not {type(self.config).__name__}"
            )
        return self.config

    def _steps(
        self,
        work: nn.Module,
        original: nn.Module,
        data: UnlearnData,
        progress: bool,
        callback: Callable[[dict[str, float]], None] | None,
    ) -> tuple[nn.Module, RunState]:
        """The update steps, then the shrink toward the original weights."""
        cfg = self.step_config
        budget = min(cfg.max_steps, self.step_budget(data))
        run = RunState(stopped_by="no_steps" if budget == 0 else "max_steps")
        self._history, self._model = run.history, work
        self.forget_logits = forget_logits(work, data, batch_size=cfg.eval_batch_size)
        stats = status_of(self.forget_logits, data)
        if budget > 0 and self.is_done(stats["forgotten"] == 1.0, 0):
            run.stopped_by = self.stop_label()
        elif budget > 0:
            opt = self.make_optimizer(work)
            bar = tqdm(total=budget, disable=not progress, desc=self.name, unit="step", leave=False)
            try:
                with self.phase("unlearn"):
                    for step in range(1, budget + 1):
                        stats = self._step(work, data, opt, step, run, callback)
                        bar.update()
                        if step % 10 == 0 or step == 1:
                            bar.set_postfix(
                                loss=f"{run.history[-1]['loss']:.3f}",
                                forget_acc=f"{stats['forget_acc']:.1f}",
                            )
                        if self.is_done(stats["forgotten"] == 1.0, step):
                            run.stopped_by = self.stop_label()
                            break
                        self._heal_lr(opt, step)
            finally:
                bar.close()
                work.zero_grad(set_to_none=True)
        best, self._best, self._model = self._best, None, None
        restore = best is not None and best[1] != run.steps
        if best is not None and restore:  # the heal's best check, where D_f was forgotten
            work.load_state_dict(best[2])
        if (cfg.precision != "fp32" or restore) and run.steps > 0:  # the last check may be bf16
            stats = forget_status(work, data, batch_size=cfg.eval_batch_size)
        run.forgotten = stats["forgotten"] == 1.0
        if cfg.shrink_steps > 0 and run.steps > 0 and run.forgotten:
            work.eval()
            with self.phase("shrink"):
                work, run.fraction = shrink_update(
                    original,
                    work,
                    lambda m: (
                        forget_status(m, data, batch_size=cfg.eval_batch_size)["forgotten"] == 1.0
                    ),
                    steps=cfg.shrink_steps,
                )
        return work, run

    def _step(
        self,
        work: nn.Module,
        data: UnlearnData,
        opt: torch.optim.Optimizer,
        step: int,
        run: RunState,
        callback: Callable[[dict[str, float]], None] | None,
    ) -> dict[str, float]:
        """One update step and its stop check; returns the forget-set status after it."""
        cfg = self.step_config
        set_train_mode(work, bn_train=cfg.bn_mode == "train")
        with self.autocast(data):
            parts = self.loss(work, data, step)
        loss = parts["loss"]
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"{self.name}: loss became {loss.item()} at step {step}; the input model is "
                "untouched. Lower lr or raise the regularization"
            )
        opt.zero_grad(set_to_none=True)
        self.backward(work, parts)
        if cfg.clip_grad_norm > 0:
            parts["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                work.parameters(), cfg.clip_grad_norm
            )
        opt.step()
        run.steps = step
        with self.phase("stop_check"):
            self.forget_logits, stats = stop_check(
                work,
                data,
                batch_size=cfg.eval_batch_size,
                low_precision=None if cfg.precision == "fp32" else self.autocast(data),
                decisive=lambda: self._decisive(step),
            )
        self.status = stats
        record = {"step": float(step)}
        record.update({k: float(v.detach()) for k, v in parts.items()})
        record.update({k: v for k, v in stats.items() if k != "forgotten"})
        run.history.append(record)
        if callback is not None:
            callback(record)
        return stats
