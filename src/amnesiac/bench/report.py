"""Turn benchmark rows into RESULTS.md and PNG plots. The file is generated, never edited."""

from __future__ import annotations

import datetime
import math
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

import amnesiac
from amnesiac._io import atomic_write_text
from amnesiac.bench.grid import Grid
from amnesiac.bench.runner import STAMP_FORMAT, cpu_name
from amnesiac.continual import plot_continual


def _ms(values: list[float], digits: int = 1) -> str:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _wall(row: dict[str, Any]) -> float:
    return float(row["seconds"].get("wall", row["seconds"].get("total", 0.0)))


def capped_at(row: dict[str, Any]) -> int | None:
    """The step cap of a row that ran out of steps under a budget below its method's own (its
    default, or its preset's), else ``None``: such a row does not describe the method."""
    if row.get("stopped_by") != "max_steps":
        return None
    try:
        own = amnesiac.make_config(row["method"], row.get("preset")).max_steps
    except amnesiac.AmnesiacError:
        return None
    cap = int(row.get("settings", {}).get("max_steps", own))
    return cap if cap < own else None


def summarize(rows: list[dict[str, Any]], section: str = "main") -> list[dict[str, Any]]:
    """Mean and std over seeds per (label, k) of the successful unlearning rows; a label gets
    "(capped at N steps)" where one of its rows ran out of a budget cut below the method's."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    order: list[tuple[str, int]] = []
    for r in rows:
        if r.get("kind") != "unlearn" or r.get("status") != "ok":
            continue
        if r.get("section", "main") != section:
            continue
        key = (r["label"], r["k"])
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
                "k": k,
                "n": len(g),
                "forgotten": sum(bool(r["forgotten"]) for r in g),
                "forget_acc": [r["after_forget_acc"] for r in g],
                "retain_acc": [r["after_retain_acc"] for r in g],
                "test_acc": [r["after_test_acc"] for r in g],
                "retain_drop": [r["before_retain_acc"] - r["after_retain_acc"] for r in g],
                "test_drop": [r["before_test_acc"] - r["after_test_acc"] for r in g],
                "steps": [float(r["steps"]) for r in g],
                "seconds": [_wall(r) for r in g],
                **{
                    f"{when}_{key}": [r.get(f"{when}_{key}", math.nan) for r in g]
                    for when in ("before", "after")
                    for key in MIA_KEYS
                },
            }
        )
    return out


def _table(summary: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| method | k | forgotten | D_f acc | D_r acc (drop) | D_test acc (drop) | steps "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['label']} | {s['k']} | {s['forgotten']}/{s['n']} | {_ms(s['forget_acc'])} | "
            f"{_ms(s['retain_acc'], 2)} ({_ms(s['retain_drop'], 2)}) | "
            f"{_ms(s['test_acc'], 2)} ({_ms(s['test_drop'], 2)}) | {_ms(s['steps'], 0)} | "
            f"{_ms(s['seconds'])} |"
        )
    return lines


def _frontier_table(summary: list[dict[str, Any]]) -> list[str]:
    """D_test drop per method (rows) and k (columns), with how many runs forgot D_f."""
    ks = sorted({s["k"] for s in summary})
    cells: dict[str, dict[int, str]] = defaultdict(dict)
    for s in summary:
        cells[s["label"]][s["k"]] = f"{_ms(s['test_drop'], 2)} ({s['forgotten']}/{s['n']})"
    lines = [
        "| method | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for label, by_k in cells.items():
        lines.append(f"| {label} | " + " | ".join(by_k.get(k, "") for k in ks) + " |")
    return lines


MIA_KEYS = ("mia_loss_member_rate", "mia_loss_auc", "mia_entropy_auc")


def _mia_table(summary: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| method | k | D_f called members, % (before) | AUC D_f vs D_test, loss attack "
        "(before) | AUC, entropy attack (before) |",
        "|---|---|---|---|---|",
    ]
    for s in summary:
        cells = [
            f"{_ms(s['after_' + key], d)} ({_ms(s['before_' + key], d)})"
            for key, d in zip(MIA_KEYS, (1, 3, 3), strict=True)
        ]
        lines.append(f"| {s['label']} | {s['k']} | " + " | ".join(cells) + " |")
    return lines


def _audit_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per audited run: LiRA before and after, relearn time, CKA."""
    audited = [r for r in rows if r.get("audited") and r.get("status") == "ok"]
    if not audited:
        return []
    lira = any("after_lira_auc" in r for r in audited)
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
            f"| {r['label']} | {r['k']} | {r['seed']} | {r['after_forget_acc']:.1f} | "
            f"{r['before_test_acc'] - r['after_test_acc']:.2f} |"
        )
        if lira:
            line += "".join(
                f" {r.get('after_lira_' + key, math.nan):.{d}f} "
                f"({r.get('before_lira_' + key, math.nan):.{d}f}) |"
                for key, d in (("auc", 3), ("tpr_at_1pct_fpr", 1), ("tpr_at_0.1pct_fpr", 1))
            )
        line += f" {r['relearn_steps']} | {r.get('cka', math.nan):.3f} |"
        lines.append(line)
    return lines


def _find(rows: list[dict[str, Any]], label: str, k: int, seed: int) -> dict[str, Any] | None:
    for r in rows:
        if (
            r.get("kind") == "unlearn"
            and r.get("status") == "ok"
            and r["label"] == label
            and r["k"] == k
            and r["seed"] == seed
            and r.get("section", "main") == "main"
        ):
            return r
    return None


def _save(fig: Any, out_dir: Path, name: str) -> str:
    """Lay out, write and close a figure; return its file name."""
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    return name


def plots(summary: list[dict[str, Any]], out_dir: Path, prefix: str) -> list[str]:
    """Write the three PNG plots; return their file names."""
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in summary:
        by_label[s["label"]].append(s)
    names = []
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, ss in by_label.items():
        ss = sorted(ss, key=lambda s: s["k"])
        ax.plot(
            [s["k"] for s in ss], [statistics.fmean(s["test_acc"]) for s in ss], "o-", label=label
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("forget-set size k")
    ax.set_ylabel("test accuracy after unlearning (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names.append(_save(fig, out_dir, f"{prefix}_test_acc_vs_k.png"))

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    labels = list(by_label)
    means = [statistics.fmean([x for s in by_label[la] for x in s["seconds"]]) for la in labels]
    ax.barh(labels, means)
    ax.set_xscale("log")
    ax.set_xlabel("wall time per run, mean over k and seeds (s, log scale)")
    ax.grid(alpha=0.3, axis="x")
    names.append(_save(fig, out_dir, f"{prefix}_seconds.png"))

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, ss in by_label.items():
        xs = [statistics.fmean(s["seconds"]) for s in ss]
        ys = [statistics.fmean(s["test_drop"]) for s in ss]
        ax.scatter(xs, ys, label=label)
        for s, x, y in zip(ss, xs, ys, strict=True):
            ax.annotate(f"k={s['k']}", (x, y), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale)")
    ax.set_ylabel("test-accuracy drop (points)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names.append(_save(fig, out_dir, f"{prefix}_drop_vs_seconds.png"))
    return names


def _workers_line(rows: list[dict[str, Any]]) -> str:
    """How the cells shared the machine (cells at once, torch threads each)."""
    cells = [r for r in rows if r.get("kind") != "speed"]
    workers = sorted({int(r.get("workers", 1)) for r in cells}) or [1]
    threads = sorted({int(r["threads"]) for r in cells if "threads" in r})
    speed = [r for r in rows if r.get("kind") == "speed"]
    text = (
        f"cells ran {'/'.join(map(str, workers))} at a time with "
        f"{'/'.join(map(str, threads)) or '?'} torch thread(s) each"
    )
    if speed:
        text += f"; the speed cell ran first, with {speed[-1].get('threads', '?')} torch thread(s)"
    return text


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def _completion(grid: Grid, rows: list[dict[str, Any]]) -> list[str]:
    """A line saying how much of the grid the rows cover, and its elapsed time."""
    ran = {r["id"] for r in rows if r.get("status") in ("ok", "failed")}
    missing = [c for c in grid.cells if c.id not in ran]  # a failed cell is listed on its own
    stamps = sorted(r["time"] for r in rows if "time" in r)
    out = []
    if missing:
        out.append(
            f"- **Incomplete: {len(grid.cells) - len(missing)} of {len(grid.cells)} cells "
            f"done**; rerun the command above to resume (missing: "
            + ", ".join(sorted({c.label for c in missing}))
            + ")"
        )
    if stamps:
        out.append(f"- First row {stamps[0]}, last row {stamps[-1]} (UTC)")
    runs: dict[str, list[float]] = defaultdict(list)
    exact: dict[str, bool] = defaultdict(lambda: True)
    for r in rows:
        if "grid_started" not in r or "time" not in r:
            continue
        if "finished" in r:
            end = _parse_utc(r["finished"])
        else:  # rows from before "finished" was recorded: their start plus the unlearning
            end = _parse_utc(r["time"]) + float((r.get("seconds") or {}).get("wall", 0.0))
            exact[r["grid_started"]] = False
        runs[r["grid_started"]].append(end)
    for start, ends in sorted(runs.items()):
        minutes = (max(ends) - _parse_utc(start)) / 60
        what = "the whole grid" if len(ends) == len(rows) and not missing else "its cells"
        took = f"{minutes:.1f} min" if exact[start] else f"at least {minutes:.1f} min"
        out.append(
            f"- **A run of the command started {start} ran {len(ends)} of these cells: "
            f"{took}** from its start to its last cell's end ({what}, shadow models and the "
            "speed cell included)"
        )
    return out


def _parse_utc(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=datetime.UTC).timestamp()


def write_report(grid: Grid, rows: list[dict[str, Any]], *, command: str) -> Path:
    """Write RESULTS.md (and the plots beside it) from ``rows``; return its path."""
    out_dir = grid.path.parent
    summary = summarize(rows)
    prefix = grid.name.replace(" ", "_")
    images = plots(summary, out_dir, prefix) if summary else []
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") == "failed"]
    total = sum(_wall(r) for r in ok if r.get("kind") == "unlearn")
    env = ok[0] if ok else {}
    lines = [
        f"# Benchmark results: {grid.name}",
        "",
        "Generated by `amnesiac bench --report` from the rows in "
        f"`{grid.results}`; do not edit by hand. Rows produced by:",
        "",
        "```",
        command,
        "```",
        "",
        f"- Generated: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {env.get('cpu', cpu_name())}, {env.get('cores', '?')} cores, "
        f"torch {env.get('torch', '?')}; " + _workers_line(ok),
        f"- Dataset: {grid.dataset}; model: {grid.model}; cells: {len(ok)} ok, "
        f"{len(failed)} failed",
        f"- Unlearning wall time summed over the grid: {total / 60:.1f} min",
        *_completion(grid, rows),
        "- D_r accuracy is measured on "
        + (
            f"a seeded subset of {grid.retain_eval_size:,} retained instances per (k, seed)"
            if grid.retain_eval_size
            else "all retained instances"
        )
        + "; D_f on every forget instance; D_test on "
        + (
            f"test rows {grid.test_rows[0]} to {grid.test_rows[1] - 1} only (`test_rows`: the "
            "other rows may be surrogate images)"
            if grid.test_rows
            else "the whole test split"
        )
        + ". Accuracies in percent, mean ± std over seeds; drops are before minus after.",
        "",
    ]
    speed = [r for r in ok if r.get("kind") == "speed"]
    ref = _find(rows, "retrain", 32, 0)
    ours = _find(rows, "l2ul", 32, 0)
    paper = _find(rows, "l2ul (paper)", 32, 0)
    if speed or (ref and ours):
        lines += ["## Speed", ""]
    if ref and ours:
        lines.append(
            f"k=32, seed 0: `l2ul` {_wall(ours):.1f} s"
            + (f", `l2ul` paper preset {_wall(paper):.1f} s" if paper else "")
            + f", `retrain` {_wall(ref):.1f} s. `retrain` / `l2ul` = "
            f"**{_wall(ref) / _wall(ours):.1f}x**"
            + (
                f"; paper preset / `l2ul` = **{_wall(paper) / _wall(ours):.2f}x**."
                if paper
                else "."
            )
        )
        lines.append("")
    if speed:
        s = speed[-1]
        lines.append(
            f"PGD efficiency {s['pgd_efficiency']:.2f} ({s['pgd_example_iters_per_s']:.0f} "
            f"example-iterations/s against {s['fwd_bwd_per_s']:.0f} examples/s of a plain "
            f"forward+backward pass, batch {int(s['speed_batch'])}); evaluation efficiency "
            f"{s['eval_efficiency']:.2f} ({s['evaluate_per_s']:.0f} against "
            f"{s['infer_per_s']:.0f} images/s of plain inference)."
        )
        gains = [
            f"{s[key]:.2f}x faster {what}"
            for key, what in (
                ("precision_speedup", "under bfloat16 autocast than in float32"),
                ("layout_speedup", "with channels-last storage than in the default layout"),
            )
            if key in s
        ]
        if gains:
            lines.append("A plain forward+backward pass is " + ", and ".join(gains) + ".")
        lines.append("")
    if summary:
        lines += [
            "## Frontier",
            "",
            "D_test drop in points (mean ± std over seeds) against the number of forget "
            "instances k; in brackets, the runs that forgot all of D_f.",
            "",
            *_frontier_table(summary),
            "",
            "## Results",
            "",
            *_table(summary),
            "",
        ]
        lines += [f"![{name}]({name})" for name in images] + [""]
        if any(not math.isnan(v) for s in summary for v in s["after_mia_loss_auc"]):
            lines += [
                "## Membership inference (population attacks)",
                "",
                "A logistic-regression attack learns members (the D_r sample) from non-members "
                "(D_test) on the per-example loss, a second one on confidence features "
                "(true-class probability, top probability, entropy); see "
                "`amnesiac.metrics.mia`. Forgotten means: D_f looks like D_test (AUC near 0.5, "
                "member rate near the attack's rate on test data).",
                "",
                *_mia_table(summary),
                "",
            ]
    audit = _audit_table(rows)
    if audit:
        shadows = {int(r["lira_shadow_models"]) for r in rows if "lira_shadow_models" in r}
        lines += [
            "## Audit",
            "",
            "Per-example evidence for the audited runs (`amnesiac.audit`'s measurements). "
            + (
                f"LiRA, offline, with {'/'.join(map(str, sorted(shadows)))} shadow models "
                "trained on random halves of the training set with the model's recipe: D_f "
                "(positives) against D_test (negatives); forgotten means AUC near 0.5 and TPR "
                "near the FPR. "
                if shadows
                else ""
            )
            + "Relearn steps: plain fine-tuning steps on D_f (lr 1e-3, capped at 200) until "
            "D_f accuracy is back to the original model's; the retrained model's count is the "
            "reference. CKA: linear CKA of penultimate features on D_test against the original "
            "model (1: representation unchanged).",
            "",
            *audit,
            "",
        ]
    ablation = summarize(rows, "ablation")
    if ablation:
        lines += ["## Ablation (each change on its own)", "", *_table(ablation), ""]
    continual = [r for r in ok if r.get("kind") == "continual"]
    if continual:
        lines += [
            "## Continual unlearning",
            "",
            "Requests in sequence (`run_continual`): chained rows start each round from the "
            "previous round's model; rows marked *from the original* re-solve every request so "
            "far from the original model. D_r is a seeded sample of instances no round "
            "requests.",
            "",
        ]
        for r in continual:
            name = f"{prefix}_continual_{_slug(r['label'])}_seed{r['seed']}.png"
            plot_continual(r["rounds"], out_dir / name, f"{r['label']}, {r['k']} per round")
            lines += [
                f"**{r['label']}**"
                + (", from the original" if r.get("from_original") else ", chained")
                + f", {r['k']} instances per round, seed {r['seed']} "
                f"(D_test before: {r['before_test_acc']:.2f}%; {r['seconds']['wall']:.0f} s):",
                "",
                "| round | D_f of the round | all D_f so far | D_r | D_test | steps |",
                "|---|---|---|---|---|---|",
                *[
                    f"| {x['round']} | {x['round_forget_acc']:.1f} | {x['all_forget_acc']:.1f} | "
                    f"{x['retain_acc']:.2f} | {x['test_acc']:.2f} | {x['steps']} |"
                    for x in r["rounds"]
                ],
                "",
                f"![{name}]({name})",
                "",
            ]
    if failed:
        lines += ["## Failed cells", ""]
        lines += [f"- {r['label']} k={r['k']} seed={r['seed']}: {r['error']}" for r in failed]
        lines.append("")
    path = out_dir / grid.report
    atomic_write_text(path, "\n".join(lines))
    return path
