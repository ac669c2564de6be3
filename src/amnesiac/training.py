"""Supervised training of a classifier from scratch: the pre-training recipe, also used by
the ``retrain`` reference method and by shadow models."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from amnesiac._choices import choice_problems
from amnesiac.errors import DivergenceError, InvalidSettingsError
from amnesiac.ops.layout import to_channels_last, to_contiguous
from amnesiac.ops.precision import Precision, autocast

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainRecipe:
    """How a classifier is trained from scratch.

    Attributes:
        epochs: Passes over the training data.
        lr: Peak learning rate of the one-cycle schedule (SGD with Nesterov momentum).
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: Training batch size.
        crop_padding: Random-crop augmentation: pad by this many pixels and crop back (0: off).
        flip: Random horizontal flips.
        warmup: Fraction of the steps spent warming the learning rate up.
        seed: Seed of the shuffling and augmentation generator.
        precision: ``"fp32"``, or ``"bf16"``: forward and backward passes under bfloat16
            autocast, weights and optimizer in float32 (a ResNet-20 pass is about 3x faster on
            a CPU with AMX, see the speed section of ``benchmarks/RESULTS.md``; slower without
            bfloat16 instructions).
    """

    epochs: int = 8
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    crop_padding: int = 2
    flip: bool = True
    warmup: float = 0.15
    seed: int = 0
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 0:
            problems.append(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop_padding < 0:
            problems.append(f"crop_padding must be >= 0, got {self.crop_padding}")
        if not 0 <= self.warmup < 1:
            problems.append(f"warmup must be in [0, 1), got {self.warmup}")
        problems += choice_problems(self)
        if problems:
            raise InvalidSettingsError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def augment(x: Tensor, *, padding: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Random crop after zero padding and random horizontal flip, per sample, batched.

    Shape:
        ``(N, C, H, W)`` in and out.
    """
    n, _, h, w = x.shape
    if padding > 0:
        padded = nn.functional.pad(x, (padding,) * 4)
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
        idx = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


def one_cycle(step: int, total: int, warmup: float) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to 0."""
    w = max(1, int(total * warmup))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Draw fresh weights for ``model`` in place, reproducibly from ``seed``.

    Every submodule with ``reset_parameters`` is reset (BatchNorm statistics too), then every
    ``init_weights`` method (the built-in architectures' own initialization) is applied.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
        for m in model.modules():
            init = getattr(m, "init_weights", None)
            if callable(init):
                init()
    return model


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    recipe: TrainRecipe,
    *,
    progress: bool = False,
    on_epoch: Callable[[int, nn.Module], dict[str, float] | None] | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` with ``recipe``; returns it in eval mode.

    Args:
        model: The classifier (inputs in [0, 1]).
        x: Images ``(N, C, H, W)`` in [0, 1].
        y: Labels ``(N,)``.
        recipe: The training recipe.
        progress: Show a progress bar.
        on_epoch: Called after each epoch with ``(epoch, model)``; may return numbers to show
            in the progress bar (e.g. test accuracy). The model is in eval mode during the call.

    Raises:
        DivergenceError: The loss became NaN or infinite.
    """
    gen = torch.Generator().manual_seed(recipe.seed)
    if len(x):
        to_channels_last(model, x[:1])  # speed only; back to the default layout at the end
    params_decay = [p for p in model.parameters() if p.ndim > 1]
    params_other = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [
            {"params": params_decay, "weight_decay": recipe.weight_decay},
            {"params": params_other, "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.momentum > 0,
    )
    n = len(x)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    step = 0
    bar = tqdm(total=total, disable=not progress, desc="train", unit="step", leave=False)
    try:
        for epoch in range(recipe.epochs):
            model.train()
            perm = torch.randperm(n, generator=gen).to(x.device)
            running = 0.0
            for i in range(steps_per_epoch):
                idx = perm[i * recipe.batch_size : (i + 1) * recipe.batch_size]
                xb = augment(x[idx], padding=recipe.crop_padding, flip=recipe.flip, generator=gen)
                for group in opt.param_groups:
                    group["lr"] = recipe.lr * one_cycle(step, total, recipe.warmup)
                with autocast(recipe.precision, xb.device.type):
                    loss = nn.functional.cross_entropy(model(xb), y[idx])
                if not torch.isfinite(loss):
                    raise DivergenceError(
                        f"training loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; "
                        "lower the learning rate"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                # autocast keeps its bfloat16 copies of the weights until the outermost autocast
                # region ends: inside a caller's region every later step would run with the
                # weights of the first step
                torch.clear_autocast_cache()
                running = 0.98 * running + 0.02 * loss.item() if i else loss.item()
                step += 1
                bar.update()
                if step % 20 == 0:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{running:.3f}")
            model.eval()
            shown = on_epoch(epoch, model) if on_epoch is not None else None
            logger.info("epoch %d/%d loss %.4f %s", epoch + 1, recipe.epochs, running, shown or "")
    finally:
        bar.close()
        to_contiguous(model)
    model.eval()
    return model
