"""The request page's pictures as PNG bytes: forget images (Pillow) and plots (matplotlib)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from amnesiac.errors import InvalidSettingsError
from amnesiac.html_report.markup import figure_png

#: Colours of the models in the plots (the original, the unlearned, the retrained).
MODEL_COLORS = {"original": "#bc4c00", "unlearned": "#0969da", "retrained": "#1a7f37"}
#: Colours of the bars before and after unlearning.
BEFORE, AFTER = "#8c959f", "#0969da"


def image_png(x: Tensor) -> bytes:
    """One image ``(C, H, W)`` in [0, 1] as PNG bytes at its own size (grey for one channel,
    RGB for three, the first channel otherwise)."""
    if x.dim() != 3:
        raise InvalidSettingsError(f"an image must be (C, H, W), got shape {tuple(x.shape)}")
    a = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    pic = Image.fromarray(a.transpose(1, 2, 0)) if a.shape[0] == 3 else Image.fromarray(a[0])
    buf = io.BytesIO()
    pic.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def class_accuracy_png(
    names: Sequence[str], before: Sequence[float], after: Sequence[float]
) -> bytes:
    """Grouped bars of test accuracy per class, before and after."""
    n = len(names)
    fig = Figure(figsize=(max(6.0, 0.55 * n + 1.5), 3.4))
    ax = fig.subplots()
    xs = np.arange(n)
    w = 0.4
    ax.bar(xs - w / 2, _nan0(before), w, label="before", color=BEFORE)
    ax.bar(xs + w / 2, _nan0(after), w, label="after", color=AFTER)
    ax.set_xticks(
        xs,
        [_short(s) for s in names],
        rotation=30 if n > 6 else 0,
        ha="right" if n > 6 else "center",
        fontsize=8,
    )
    low = min([v for v in [*before, *after] if not math.isnan(v)] or [0.0])
    ax.set_ylim(max(0.0, math.floor(low / 10) * 10 - 10), 100)
    ax.set_ylabel("D_test accuracy (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="lower right")
    return figure_png(fig)


def lira_histogram_png(lira: dict[str, Any], models: Sequence[str]) -> bytes:
    """Per model, the LiRA scores of D_f against D_test (densities, one panel each)."""
    fig = Figure(figsize=(3.3 * len(models) + 0.4, 2.9))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, name in zip(axes, models, strict=True):
        m = lira[name]
        hist = m.get("test_histogram") or {}
        if hist.get("counts"):
            counts = np.asarray(hist["counts"], dtype=float)
            edges = np.asarray(hist["edges"], dtype=float)
            density = counts / max(counts.sum(), 1.0) / np.diff(edges)
            ax.stairs(density, edges, fill=True, alpha=0.3, color="#57606a", label="D_test")
            ax.stairs(density, edges, color="#24292f", linewidth=0.8)
        scores = np.asarray(m.get("forget_scores", []), dtype=float)
        scores = scores[np.isfinite(scores)]
        if len(scores):
            ax.hist(
                scores,
                bins=min(30, max(5, len(scores) // 2)),
                density=True,
                alpha=0.7,
                color=MODEL_COLORS.get(name, "#0969da"),
                label="D_f",
            )
        ax.set_title(f"{name} (AUC {m['auc']:.2f})", fontsize=9)
        ax.set_xlabel("LiRA score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("density", fontsize=8)
    return figure_png(fig)


def roc_png(lira: dict[str, Any], models: Sequence[str]) -> bytes:
    """The LiRA ROC curves of D_f against D_test, log-log, with the chance line."""
    fig = Figure(figsize=(4.2, 3.6))
    ax = fig.subplots()
    floor = 1e-2  # percent: below it the log axes show nothing useful for these set sizes
    for name in models:
        roc = lira[name].get("roc") or {}
        if not roc.get("fpr"):
            continue
        fpr = np.maximum(np.asarray(roc["fpr"], dtype=float), floor)
        tpr = np.maximum(np.asarray(roc["tpr"], dtype=float), floor)
        ax.plot(
            fpr,
            tpr,
            drawstyle="steps-post",
            color=MODEL_COLORS.get(name),
            label=f"{name} (AUC {lira[name]['auc']:.2f})",
        )
    ax.plot([floor, 100], [floor, 100], ":", color="#57606a", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 100)
    ax.set_ylim(floor, 100)
    ax.set_xlabel("false-positive rate on D_test (%)", fontsize=8)
    ax.set_ylabel("true-positive rate on D_f (%)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return figure_png(fig)


def _nan0(values: Sequence[float]) -> list[float]:
    return [0.0 if math.isnan(v) else v for v in values]


def _short(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
