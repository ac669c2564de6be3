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

from amnesiac import distributed as dist_helpers
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


@dataclass(frozen=True, kw_only=True)
class PretrainSetup:
    """A named pre-training setup (``amnesiac pretrain --recipe NAME``).

    Attributes:
        arch: Architecture name (:func:`amnesiac.create_model`).
        recipe: The training recipe; flags given beside ``--recipe`` override its fields.
        source: Where the setup comes from, and how it differs from there.
    """

    arch: str
    recipe: TrainRecipe
    source: str


#: Named pre-training setups. ``cifar10-resnet18`` is the L2UL code's CIFAR-10 model and
#: recipe (``main_pretrain_cifar10_resnet18.py``): ResNet-18 with a 3x3 stride-1 stem and the
#: max-pool kept, SGD lr 0.01, momentum 0.9, weight decay 5e-4, cosine decay over 200 epochs,
#: batch 128, random crop with 4 pixels of padding and flips; here under bfloat16 autocast
#: (channels-last as always), the GPU path.
PRETRAIN_SETUPS: dict[str, PretrainSetup] = {
    "cifar10-resnet18": PretrainSetup(
        arch="resnet18_maxpool",
        recipe=TrainRecipe(
            epochs=200,
            lr=0.01,
            momentum=0.9,
            weight_decay=5e-4,
            batch_size=128,
            crop_padding=4,
            flip=True,
            warmup=0.0,
            precision="bf16",
        ),
        source="L2UL (Cha et al., AAAI 2024), main_pretrain_cifar10_resnet18.py; differs in "
        "the optimizer's Nesterov momentum, the cosine decay per step rather than per epoch, "
        "weight decay left off biases and BatchNorm, bfloat16 autocast, and the "
        "normalization (the training set's own channel statistics)",
    ),
}


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
    distributed: bool | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` with ``recipe``; returns it in eval mode.

    In several processes (``torchrun``), the training is data-parallel: the model is wrapped
    in ``DistributedDataParallel`` and each step's batch is shared out over the processes.
    ``recipe.batch_size`` is the **global** batch, so nothing is rescaled: every process
    draws the same seeded permutation and augmentation as one process would, takes every
    ``world``-th image of each batch (``batch_size // world`` of them; a short last batch is
    padded by repeating its first images so that every process has as many), and the
    averaged gradients are those of the whole batch up to BatchNorm, whose batch statistics
    are each process's own (no SyncBatchNorm; rank 0's running statistics are copied to
    every process after each epoch). Every process ends with the same model, buffers
    included; the loss shown and checked is the mean over the processes. Every process must
    pass the same ``x``, ``y`` and recipe, and ``model`` on its own device
    (``cuda:LOCAL_RANK`` on GPUs). In one process nothing of this happens, and the result is
    what it always was.

    Args:
        model: The classifier (inputs in [0, 1]).
        x: Images ``(N, C, H, W)`` in [0, 1].
        y: Labels ``(N,)``.
        recipe: The training recipe.
        progress: Show a progress bar (on rank 0 only).
        on_epoch: Called after each epoch with ``(epoch, model)``; may return numbers to show
            in the progress bar (e.g. test accuracy). The model is in eval mode during the call.
            In several processes it is called on every process (with the unwrapped model), so
            it may itself share out and reduce work (:mod:`amnesiac.distributed`).
        distributed: ``None``: data-parallel when a process group of more than one process
            is up (:func:`amnesiac.distributed.init`, which the CLI calls under torchrun) and
            no :func:`amnesiac.distributed.local` block is open. ``True``: join the
            launcher's group if need be and train data-parallel. ``False``: this process
            alone (what shadow models and benchmark cells do: whole jobs per rank).

    Raises:
        DivergenceError: The loss became NaN or infinite.
        InvalidSettingsError: ``batch_size`` is not divisible by the number of processes, or
            ``distributed=True`` without a launcher.
    """
    world, rank = _data_parallel(distributed, recipe.batch_size)
    gen = torch.Generator().manual_seed(recipe.seed)
    if len(x):
        to_channels_last(model, x[:1])  # speed only; back to the default layout at the end
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        cuda = x.device.type == "cuda"
        net = DistributedDataParallel(model, device_ids=[x.device] if cuda else None)
    opt = _optimizer(model, recipe)
    n = len(x)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    step = 0
    show = progress and rank == 0
    bar = tqdm(total=total, disable=not show, desc="train", unit="step", leave=False)
    try:
        for epoch in range(recipe.epochs):
            net.train()
            perm = torch.randperm(n, generator=gen).to(x.device)
            running = 0.0
            for i in range(steps_per_epoch):
                idx = perm[i * recipe.batch_size : (i + 1) * recipe.batch_size]
                xb = augment(x[idx], padding=recipe.crop_padding, flip=recipe.flip, generator=gen)
                yb = y[idx]
                if world > 1:  # this process's share of the global batch
                    part = rank_part(len(idx), rank, world).to(x.device)
                    xb, yb = xb[part], yb[part]
                for group in opt.param_groups:
                    group["lr"] = recipe.lr * one_cycle(step, total, recipe.warmup)
                with autocast(recipe.precision, xb.device.type):
                    loss = nn.functional.cross_entropy(net(xb), yb)
                # the mean over the processes, so every process stops at the same step
                shown_loss = loss.item()
                if world > 1:
                    shown_loss = dist_helpers.all_reduce_sum([shown_loss])[0] / world
                if not math.isfinite(shown_loss):
                    raise DivergenceError(
                        f"training loss became {shown_loss} at epoch {epoch + 1}, "
                        f"step {i + 1}; lower the learning rate"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                # autocast keeps its bfloat16 copies of the weights until the outermost autocast
                # region ends: inside a caller's region every later step would run with the
                # weights of the first step
                torch.clear_autocast_cache()
                running = 0.98 * running + 0.02 * shown_loss if i else shown_loss
                step += 1
                bar.update()
                if step % 20 == 0:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{running:.3f}")
            model.eval()
            if world > 1:  # every process holds rank 0's model, BatchNorm statistics included
                dist_helpers.broadcast_buffers(model)
            shown = on_epoch(epoch, model) if on_epoch is not None else None
            logger.info("epoch %d/%d loss %.4f %s", epoch + 1, recipe.epochs, running, shown or "")
    finally:
        bar.close()
        del net  # DistributedDataParallel's hooks go with it
        to_contiguous(model)
    model.eval()
    return model


def _optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.SGD:
    """SGD with Nesterov momentum; weight decay on weights, not on biases and BatchNorm."""
    return torch.optim.SGD(
        [
            {
                "params": [p for p in model.parameters() if p.ndim > 1],
                "weight_decay": recipe.weight_decay,
            },
            {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.momentum > 0,
    )


def rank_part(m: int, rank: int, world: int) -> Tensor:
    """Positions in a batch of ``m`` that process ``rank`` of ``world`` trains on.

    Every ``world``-th position starting at ``rank``, after padding the batch to a multiple of
    ``world`` by repeating its first positions (as ``DistributedSampler`` pads an epoch), so
    that every process gets ``ceil(m / world)`` positions and together they cover the batch.

    Example:
        >>> rank_part(5, 1, 2).tolist()
        [1, 3, 0]
    """
    size = -(-m // world) * world
    return (torch.arange(size) % m)[rank::world]


def _data_parallel(distributed: bool | None, batch_size: int) -> tuple[int, int]:
    """``(world, rank)`` of a :func:`train_classifier` run: ``(1, 0)`` in one process."""
    if distributed is False:
        return 1, 0
    if distributed and not dist_helpers.init() and not dist_helpers.active():
        raise InvalidSettingsError(
            "distributed=True needs several processes: start them with torchrun "
            "(torchrun --nproc-per-node N ...)"
        )
    if not dist_helpers.active():
        return 1, 0
    world, rank = dist_helpers.world_size(), dist_helpers.rank()
    if batch_size % world:
        raise InvalidSettingsError(
            f"batch_size {batch_size} is the global batch of {world} processes and must be "
            f"divisible by {world}; use {batch_size - batch_size % world} or "
            f"{batch_size + world - batch_size % world}"
        )
    return world, rank
