"""Benchmark rows summarized over seeds, and the Markdown tables of RESULTS.md built from them."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

import amnesiac
from amnesiac.bench.resume import row_inputs
from amnesiac.records import BenchRow

#: The population membership attacks' keys of a row (``before_``/``after_`` each).
MIA_KEYS = ("mia_loss_member_rate", "mia_loss_auc", "mia_entropy_auc")


def mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` of the values that are numbers (``-`` for none, the value for one)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def find_row(rows: list[BenchRow], label: str, k: int, seed: int) -> BenchRow | None:
    """The successful main-section unlearning row of ``label`` at ``k`` and ``seed``."""
    for r in rows:
        if r.kind == "unlearn" and r.ok and r.main and (r.label, r.k, r.seed) == (label, k, seed):
            return r
    return None


def capped_at(row: BenchRow) -> int | None:
    """The step cap of a row that ran out of steps under a budget below its method's own (its
    default, or its preset's), else ``None``: such a row does not describe the method."""
    if row.stopped_by != "max_steps":
        return None
    try:
        own = getattr(amnesiac.make_config(row.method, row.preset), "max_steps", None)
    except amnesiac.AmnesiacError:
        return None
    if own is None:  # a method without update steps
        return None
    cap = int(row.settings.get("max_steps", own))
    return cap if cap < own else None


def summarize(rows: list[BenchRow], section: str = "main") -> list[dict[str, Any]]:
    """Mean and std over seeds per (label, k) of the successful unlearning rows; a label gets
    "(capped at N steps)" where one of its rows ran out of a budget cut below the method's."""
    groups: dict[tuple[str, int], list[BenchRow]] = defaultdict(list)
    order: list[tuple[str, int]] = []
    for r in rows:
        if r.kind != "unlearn" or not r.ok or (r.section or "main") != section:
            continue
        key = (r.label, r.k)
        if key not in groups:
            order.append(key)
        groups[key].append(r)
    out = []
    for label, k in sorted(order, key=lambda t: (t[1], order.index(t))):
        g = groups[(label, k)]
        same = [r for (lab, _), rs in groups.items() if lab == label for r in rs]
        caps = sorted({c for r in same if (c := capped_at(r)) is not None})
        out.append(
            {
                "label": label + (f" (capped at {caps[0]} steps)" if caps else ""),
                "row_label": label,  # as the rows have it
                "k": k,
                "n": len(g),
                "forgotten": sum(bool(r.forgotten) for r in g),
                "forget_acc": [r.value("after_forget_acc") for r in g],
                "retain_acc": [r.value("after_retain_acc") for r in g],
                "test_acc": [r.value("after_test_acc") for r in g],
                "retain_drop": [r.drop("retain") for r in g],
                "test_drop": [r.drop("test") for r in g],
                "steps": [float(r.steps or 0) for r in g],
                "seconds": [r.wall for r in g],
                **{
                    f"{when}_{key}": [r.value(f"{when}_{key}", math.nan) for r in g]
                    for when in ("before", "after")
                    for key in MIA_KEYS
                },
            }
        )
    return out


def results_table(summary: list[dict[str, Any]]) -> list[str]:
    """One line per (label, k): accuracies, drops, steps and seconds."""
    lines = [
        "| method | k | forgotten | D_f acc | D_r acc (drop) | D_test acc (drop) | steps "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ms = mean_std
    for s in summary:
        lines.append(
            f"| {s['label']} | {s['k']} | {s['forgotten']}/{s['n']} | {ms(s['forget_acc'])} | "
            f"{ms(s['retain_acc'], 2)} ({ms(s['retain_drop'], 2)}) | "
            f"{ms(s['test_acc'], 2)} ({ms(s['test_drop'], 2)}) | {ms(s['steps'], 0)} | "
            f"{ms(s['seconds'])} |"
        )
    return lines


def frontier_table(summary: list[dict[str, Any]]) -> list[str]:
    """D_test drop per method (rows) and k (columns), with how many runs forgot D_f."""
    ks = sorted({s["k"] for s in summary})
    cells: dict[str, dict[int, str]] = defaultdict(dict)
    for s in summary:
        cells[s["label"]][s["k"]] = f"{mean_std(s['test_drop'], 2)} ({s['forgotten']}/{s['n']})"
    lines = [
        "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for label, by_k in cells.items():
        lines.append(f"| {label} | " + " | ".join(by_k.get(k, "") for k in ks) + " |")
    return lines


def mia_table(summary: list[dict[str, Any]]) -> list[str]:
    """The population membership attacks per (label, k), after unlearning (and before)."""
    lines = [
        "| method | k | D_f called members, % (before) | AUC D_f vs D_test, loss attack "
        "(before) | AUC, entropy attack (before) |",
        "|---|---|---|---|---|",
    ]
    for s in summary:
        cells = [
            f"{mean_std(s['after_' + key], d)} ({mean_std(s['before_' + key], d)})"
            for key, d in zip(MIA_KEYS, (1, 3, 3), strict=True)
        ]
        lines.append(f"| {s['label']} | {s['k']} | " + " | ".join(cells) + " |")
    return lines


def audit_table(rows: list[BenchRow]) -> list[str]:
    """One line per audited run: LiRA before and after, relearn time, CKA."""
    audited = [r for r in rows if r.audited and r.ok]
    if not audited:
        return []
    lira = any(r.value("after_lira_auc") is not None for r in audited)
    head = "| method | k | seed | D_f acc | D_test drop |"
    rule = "|---|---|---|---|---|"
    if lira:
        head += " LiRA AUC (before) | TPR at 1% FPR (before) | TPR at 0.1% FPR (before) |"
        rule += "---|---|---|"
    head += " relearn steps | CKA |"
    rule += "---|---|"
    lines = [head, rule]
    for r in audited:
        line = (
            f"| {r.label} | {r.k} | {r.seed} | {r.value('after_forget_acc'):.1f} | "
            f"{r.drop('test'):.2f} |"
        )
        if lira:
            line += "".join(
                f" {r.value('after_lira_' + key, math.nan):.{d}f} "
                f"({r.value('before_lira_' + key, math.nan):.{d}f}) |"
                for key, d in (("auc", 3), ("tpr_at_1pct_fpr", 1), ("tpr_at_0.1pct_fpr", 1))
            )
        line += f" {r.value('relearn_steps')} | {r.value('cka', math.nan):.3f} |"
        lines.append(line)
    return lines


def continual_table(rounds: list[dict[str, Any]]) -> list[str]:
    """One line per round of a continual row."""
    return [
        "| round | D_f of the round | all D_f so far | D_r | D_test | steps |",
        "|---|---|---|---|---|---|",
        *[
            f"| {x['round']} | {x['round_forget_acc']:.1f} | {x['all_forget_acc']:.1f} | "
            f"{x['retain_acc']:.2f} | {x['test_acc']:.2f} | {x['steps']} |"
            for x in rounds
        ],
    ]


def reads_of(row: BenchRow) -> str:
    """What a row's method read besides the model (:func:`row_inputs`): ``forget + D_r``,
    ``forget + unlabeled images`` (a surrogate set, or the anchors of a forget-ready model) or
    ``forget only``."""
    try:
        amnesiac.get_method(row.method)
    except amnesiac.AmnesiacError:
        return "unknown"
    inputs = row_inputs(row)
    if "retain" in inputs:
        return "forget + D_r"
    return "forget + unlabeled images" if "surrogate" in inputs else "forget only"


#: The blocks of :func:`choice_table`, in order.
READS_BLOCKS = ("forget only", "forget + unlabeled images", "forget + D_r")


def choice_table(summary: list[dict[str, Any]], rows: list[BenchRow]) -> list[str]:
    """ "Which method should I use": one line per method, in blocks by what it reads, with its
    D_test drop and D_f accuracy at each k, the LiRA AUC of its audited runs after unlearning
    and its seconds; within a block, the lowest drop first at the k most methods ran at."""
    ks = sorted({s["k"] for s in summary})
    reads: dict[str, str] = {}
    for r in rows:
        if r.kind == "unlearn" and r.ok:
            reads.setdefault(r.label, reads_of(r))
    by_label: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    row_label: dict[str, str] = {}  # a capped label carries its cap; the rows have it bare
    for s in summary:
        by_label[s["label"]][s["k"]] = s
        row_label[s["label"]] = s["row_label"]
    lira: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.audited and r.ok and (auc := r.value("after_lira_auc")) is not None:
            lira[r.label].append(auc)
    # rank at the k most methods ran at (ties: the one nearest the middle of the grid's ks)
    mid = max(
        ks,
        key=lambda k: (sum(k in v for v in by_label.values()), -abs(ks.index(k) - len(ks) // 2)),
        default=0,
    )
    head = (
        "| reads | method | "
        + " | ".join(f"k={k}: D_test drop / D_f acc" for k in ks)
        + " | LiRA AUC after (audited runs) | seconds ("
        + " / ".join(f"k={k}" for k in ks)
        + ") |"
    )
    lines = [head, "|---|---|" + "---|" * len(ks) + "---|---|"]
    for block in (*READS_BLOCKS, "unknown"):
        labels = [lab for lab in by_label if reads.get(row_label[lab], "unknown") == block]

        def key(label: str) -> float:
            at = by_label[label].get(mid)
            return statistics.fmean(at["test_drop"]) if at else math.inf

        for label in sorted(labels, key=key):
            cells = []
            for k in ks:
                got = by_label[label].get(k)
                cells.append(
                    f"{mean_std(got['test_drop'], 2)} / {mean_std(got['forget_acc'])}%"
                    if got
                    else ""
                )
            seconds = " / ".join(
                f"{statistics.fmean(by_label[label][k]['seconds']):.0f}"
                if k in by_label[label]
                else "-"
                for k in ks
            )
            auc = mean_std(lira[row_label[label]], 3)
            lines.append(f"| {block} | {label} | " + " | ".join(cells) + f" | {auc} | {seconds} |")
    return lines
