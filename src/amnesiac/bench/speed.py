"""Speed probes measured in the same run as the grid, reported as ratios."""

from __future__ import annotations

import copy
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import amnesiac
from amnesiac.ops import autocast, pgd_l2, to_channels_last


def cpu_name() -> str:
    """The processor's model name (Linux), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """The machine and software a row's timings come from."""
    return {
        "torch": torch.__version__,
        "amnesiac": amnesiac.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }


def _rate(fn: Any, n_items: int, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_items / best


def measure_speed(
    model: nn.Module,
    x: Tensor,
    *,
    batch: int = 1024,
    iters: int = 5,
    eval_n: int = 8192,
    precision: str = "fp32",
) -> dict[str, float]:
    """PGD and evaluation throughput against plain passes of the same model and batch size.

    Returns ``pgd_efficiency`` = (examples x iterations / s of :func:`pgd_l2`) / (examples / s of
    a plain forward+backward pass), both at ``precision`` (the grid's), and ``eval_efficiency`` =
    (examples / s of :func:`amnesiac.evaluate`) / (examples / s of plain inference), both in
    float32 (evaluation always is). With ``precision="bf16"`` also ``precision_speedup``: the
    plain forward+backward pass under bfloat16 autocast against float32. Every pass runs in the
    layout the library uses (channels-last where it applies, :mod:`amnesiac.ops.layout`);
    ``layout_speedup`` is the plain forward+backward pass in that layout against the default one.
    """
    plain = copy.deepcopy(model).eval()
    m = copy.deepcopy(model).eval()
    xb = x[:batch]
    to_channels_last(m, xb[:1])
    target = torch.zeros(len(xb), dtype=torch.long)

    def plain_fwd_bwd(precision: str = precision, m: nn.Module = m) -> None:
        for _ in range(iters):
            inp = xb.clone().requires_grad_(True)
            with autocast(precision, xb.device.type):
                loss = nn.functional.cross_entropy(m(inp), target, reduction="sum")
            torch.autograd.grad(loss, inp)

    def pgd() -> None:
        with autocast(precision, xb.device.type):
            pgd_l2(
                m,
                xb,
                target,
                eps=2.0,
                step_size=0.1,
                steps=iters,
                random_start=False,
                batch_size=batch,
            )

    xe = x[:eval_n]
    ye = torch.zeros(len(xe), dtype=torch.long)

    @torch.inference_mode()
    def plain_infer() -> None:
        for i in range(0, len(xe), batch):
            m(xe[i : i + batch])

    def evaluate() -> None:
        amnesiac.evaluate(m, test=(xe, ye), batch_size=batch)

    fb = _rate(plain_fwd_bwd, len(xb) * iters)
    pg = _rate(pgd, len(xb) * iters)
    inf = _rate(plain_infer, len(xe))
    ev = _rate(evaluate, len(xe))
    extra = {"layout_speedup": fb / _rate(lambda: plain_fwd_bwd(m=plain), len(xb) * iters)}
    if precision != "fp32":
        extra["precision_speedup"] = fb / _rate(lambda: plain_fwd_bwd("fp32"), len(xb) * iters)
    return {
        "fwd_bwd_per_s": fb,
        "pgd_example_iters_per_s": pg,
        "pgd_efficiency": pg / fb,
        "infer_per_s": inf,
        "evaluate_per_s": ev,
        "eval_efficiency": ev / inf,
        "speed_batch": float(batch),
        **extra,
    }


class ImageCounter:
    """Counts the images that models of one class see while it is active (a context manager):
    ``trained`` for forward passes with gradients on (each followed by a backward pass in
    training; the work that carries across machines and dataset sizes), ``inferred`` for
    passes without. Counts every model of ``model_class`` (the caller's, and the copies a
    method makes), from a global forward pre-hook removed on exit.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> with ImageCounter(torch.nn.Linear) as seen:
        ...     _ = net(torch.zeros(5, 3))
        ...     with torch.no_grad():
        ...         _ = net(torch.zeros(4, 3))
        >>> seen.trained, seen.inferred
        (5, 4)
    """

    def __init__(self, model_class: type[nn.Module]) -> None:
        self.model_class = model_class
        self.trained = 0
        self.inferred = 0
        self._handle: Any = None

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if type(module) is not self.model_class or not args or not isinstance(args[0], Tensor):
            return
        if torch.is_grad_enabled():
            self.trained += len(args[0])
        else:
            self.inferred += len(args[0])

    def __enter__(self) -> ImageCounter:
        self._handle = nn.modules.module.register_module_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
