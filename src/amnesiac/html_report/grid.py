"""The request page's pictures of the models: the grid of forgotten instances (image, true label,
prediction and confidence before and after, target), and where the damage went (test accuracy
per class, the confusions that moved most)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from amnesiac.errors import InvalidSettingsError
from amnesiac.html_report import figures
from amnesiac.html_report.markup import cell, esc, fmt, img, png_data_uri, table
from amnesiac.methods.status import meets_objective

#: How many forget instances the grid shows at most (the rest are counted).
DEFAULT_MAX_IMAGES = 256
#: The side, in CSS pixels, an instance's image is drawn at (at least; in whole multiples).
THUMB_PX = 84


def class_name(classes: Sequence[str], c: int | None) -> str:
    """The name of class ``c`` (its number where the dataset has no name for it)."""
    if c is None:
        return "-"
    return str(classes[c]) if 0 <= c < len(classes) else str(c)


def is_forgotten(inst: dict[str, Any], objective: str) -> bool:
    """Whether an instance meets the run's objective after unlearning
    (:func:`amnesiac.methods.status.meets_objective`, the rule the run stopped on)."""
    target = inst.get("target") if objective == "relabel" else None
    return bool(
        meets_objective(
            torch.tensor(inst["after"]),
            torch.tensor(inst["label"]),
            None if target is None else torch.tensor(target),
        )
    )


def _thumb_size(h: int, w: int) -> tuple[int, int]:
    scale = max(1, round(THUMB_PX / max(h, w, 1)))
    return w * scale, h * scale


def _instance(inst: dict[str, Any], x: Tensor, classes: Sequence[str], objective: str) -> str:
    """One ``<figure>`` of the grid."""
    done = is_forgotten(inst, objective)
    label = class_name(classes, inst["label"])
    width, height = _thumb_size(int(x.shape[-2]), int(x.shape[-1]))
    picture = img(
        png_data_uri(figures.image_png(x)),
        f"training instance {inst['index']}, true label {label}",
        width=width,
        height=height,
    )
    after = (
        f'<span class="{"ok" if done else "bad"}">{esc(class_name(classes, inst["after"]))} '
        f"({inst['after_conf']:.1f}%)</span>"
    )
    lines = [
        f"<b>#{inst['index']}</b> true: {esc(label)}",
        f"before: {esc(class_name(classes, inst['before']))} ({inst['before_conf']:.1f}%)",
        f"after: {after}",
        f'<span class="muted">p(true) after {inst["after_true_conf"]:.1f}%</span>',
    ]
    if inst.get("target") is not None:
        lines.append(f"target: {esc(class_name(classes, inst['target']))}")
    data = "".join(
        f' data-{k}="{v}"'
        for k, v in (
            ("index", inst["index"]),
            ("label", inst["label"]),
            ("before", inst["before"]),
            ("after", inst["after"]),
            ("target", "" if inst.get("target") is None else inst["target"]),
        )
    )
    caption = "".join(f"<div>{line}</div>" for line in lines)
    return (
        f'<figure class="inst {"forgotten" if done else "kept"}"{data}>{picture}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def instance_grid(
    instances: list[dict[str, Any]],
    forget_x: Tensor,
    classes: Sequence[str],
    *,
    objective: str = "misclassify",
    max_images: int = DEFAULT_MAX_IMAGES,
) -> str:
    """Every forget instance (up to ``max_images``; those still meeting no objective first),
    with a count of the rest.

    Shape:
        ``forget_x``: ``(K, C, H, W)`` in [0, 1], in the order of ``instances``.
    """
    if len(instances) != len(forget_x):
        raise InvalidSettingsError(f"{len(instances)} instances but {len(forget_x)} forget images")
    order = sorted(range(len(instances)), key=lambda i: is_forgotten(instances[i], objective))
    shown = order[: max(0, max_images)]
    kept = sum(not is_forgotten(inst, objective) for inst in instances)
    goal = "predicted as its target" if objective == "relabel" else "misclassified"
    note = (
        f"{len(instances) - kept} of {len(instances)} {goal} after unlearning"
        + (f"; {kept} not (shown first, red)" if kept else "")
        + ". Confidence: the model's probability of the class it predicts."
    )
    rest = len(instances) - len(shown)
    more = (
        f'<p class="note" id="more">… and {rest} more instance{"s" if rest != 1 else ""} not '
        f"shown (the grid stops at {max_images}).</p>"
        if rest
        else ""
    )
    cells = "".join(_instance(instances[i], forget_x[i], classes, objective) for i in shown)
    return (
        f"<h2>The forgotten instances ({len(instances)})</h2>"
        f'<p class="note">{esc(note)}</p><div class="grid">{cells}</div>{more}'
    )


def class_damage(outcomes: dict[str, Any], classes: Sequence[str], *, top: int = 10) -> str:
    """Test accuracy per class before and after (a bar chart and its table) and the confusion
    cells that moved most."""
    n = int(outcomes["num_classes"])
    names = [class_name(classes, c) for c in range(n)]
    before, after = outcomes["class_acc_before"], outcomes["class_acc_after"]
    chart = img(
        png_data_uri(figures.class_accuracy_png(names, before, after)),
        "bar chart of D_test accuracy per class, before and after unlearning",
        cls="plot",
    )
    rows = [
        [
            cell(names[c]),
            cell(str(outcomes["class_count"][c]), numeric=True),
            cell(fmt(before[c], 2), numeric=True, key=f"outcomes/class_acc_before/{c}"),
            cell(fmt(after[c], 2), numeric=True, key=f"outcomes/class_acc_after/{c}"),
            cell(_change(after[c] - before[c]), numeric=True),
        ]
        for c in range(n)
    ]
    moves = outcomes["confusion_changes"][:top]
    move_rows = [
        [
            cell(names[m["true"]]),
            cell(names[m["pred"]]),
            cell(str(m["before"]), numeric=True),
            cell(str(m["after"]), numeric=True),
            cell(f"{m['change']:+d}", numeric=True),
        ]
        for m in moves
    ]
    confusions = (
        table(
            ["true class", "predicted as", "before", "after", "change"], move_rows, numeric_from=2
        )
        if move_rows
        else '<p class="note">No D_test prediction changed class.</p>'
    )
    return (
        "<h2>Where the damage went: D_test by class</h2>"
        + chart
        + "<details><summary>the numbers</summary>"
        + table(["class", "images", "before %", "after %", "change"], rows)
        + "</details><h3>Confusions that moved most (D_test counts)</h3>"
        + confusions
    )


def _change(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.2f}"
