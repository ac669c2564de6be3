"""The top of the request page: what ran (dataset, models and their hashes, method, settings,
forget set, wall time by phase), the verdict, and the before/after accuracy table, all from
the run's ``--report`` dict."""

from __future__ import annotations

import json
from typing import Any

from amnesiac._versions import utc_stamp
from amnesiac.errors import UnknownNameError
from amnesiac.html_report.evidence import LedgerView
from amnesiac.html_report.markup import cell, esc, facts, fmt, num, table, val
from amnesiac.methods.registry import get_method
from amnesiac.records import UnlearnReport

_SETS = (("D_f (forget)", "forget"), ("D_r (retain)", "retain"), ("D_test", "test"))


def relabel_run(report: UnlearnReport) -> bool:
    """Whether the run trained each instance toward a target class: its objective is
    ``relabel``, or its method declares it does (:attr:`Unlearner.trains_to_targets`)."""
    if report.settings.get("objective") == "relabel":
        return True
    try:
        return get_method(report.method).cls.trains_to_targets
    except UnknownNameError:  # a report of a method this installation does not have
        return False


def _verdict(report: UnlearnReport, ledger: LedgerView | None) -> str:
    """One line a person reads first: forgotten or not, and what it cost."""
    k = len(report.forget_indices)
    before, after = report.before, report.after
    drop = before["test_acc"] - after["test_acc"]
    ok = report.forgotten
    text = (
        f'<p><span class="{"ok" if ok else "bad"}">'
        + ("Forgotten" if ok else "NOT forgotten")
        + f"</span>: {k} instance{'s' if k != 1 else ''}, D_f accuracy "
        + f"{fmt(before['forget_acc'], 2)}% → {fmt(after['forget_acc'], 2)}%; the rest of the "
        + f"model: D_test {fmt(before['test_acc'], 2)}% → {fmt(after['test_acc'], 2)}% "
        + f"({-drop:+.2f} points).</p>"
    )
    if ledger is not None:
        good = ledger.chain_problem is None and ledger.hash_ok
        text += (
            f'<p>Ledger: <span class="{"ok" if good else "bad"}">'
            + ("chain holds" if good else "chain BROKEN")
            + f"</span>, entry {ledger.position} of {ledger.total}.</p>"
        )
    return text


def header(report: UnlearnReport, ledger: LedgerView | None = None) -> str:
    """Title, verdict, and what ran: dataset, models and hashes, method, forget set, times."""
    k = len(report.forget_indices)
    preset = report.preset
    sha = report.model_sha256
    out = report.out
    items = [
        ("dataset", val(report.dataset, "dataset")),
        (
            "model",
            val(report.model, "model")
            + (f' <span class="mono hash">sha256 {val(sha, "model_sha256")}</span>' if sha else ""),
        ),
    ]
    if out:
        osha = report.out_sha256
        items.append(
            (
                "unlearned model",
                val(out, "out")
                + (
                    f' <span class="mono hash">sha256 {val(osha, "out_sha256")}</span>'
                    if osha
                    else ""
                ),
            )
        )
    items += [
        (
            "method",
            val(report.method, "method") + (f", preset {val(preset, 'preset')}" if preset else ""),
        ),
        ("forget set", f"{val(report.forget_spec, 'forget_spec')}, {k} instances"),
        (
            "forget_sha256",
            f'<span class="mono hash">{val(report.forget_sha256, "forget_sha256")}</span>',
        ),
        *([("anchors", _anchors_line(report))] if report.anchors else []),
        ("run", _run_line(report)),
        ("wall time", _seconds(report.seconds)),
    ]
    versions = report.versions
    if versions:
        items.append(
            (
                "software",
                esc(
                    ", ".join(f"{n} {versions[n]}" for n in ("amnesiac", "torch") if n in versions)
                ),
            )
        )
    title = f"Deletion request: {report.method} on {k} {report.dataset} instances"
    return (
        f"<h1>{esc(title)}</h1>"
        f'<p class="note">Page generated {esc(utc_stamp())} by amnesiac from the run\'s report '
        "and its models.</p>" + _verdict(report, ledger) + facts(items) + _settings(report.settings)
    )


def _anchors_line(report: UnlearnReport) -> str:
    """What held the rest of the model (a forget-ready model's anchors, or ``--surrogate``
    images), and the reserved anchors the request released."""
    line = val(report.anchors, "anchors")
    released = report.released
    if released:
        line += esc(
            f"; {len(released)} requested images were reserved anchors the model never trained "
            "on, released from its anchor set"
        )
    return line


def _run_line(report: UnlearnReport) -> str:
    frac = report.update_fraction
    return (
        f"{val(report.steps, 'steps')} steps, stopped by "
        f"{val(report.stopped_by, 'stopped_by')}, forgotten: "
        f"{val(report.forgotten, 'forgotten', text='yes' if report.forgotten else 'no')}"
        + (f", update shrunk to {val(frac, 'update_fraction', 3)}" if frac < 1 else "")
    )


def _seconds(seconds: dict[str, float]) -> str:
    if not seconds:
        return "-"
    return " · ".join(f"{esc(k)} {val(v, 'seconds/' + k, 1)} s" for k, v in seconds.items())


def _settings(settings: dict[str, Any]) -> str:
    rows = [
        [cell(name), cell(val(v, f"settings/{name}", text=json.dumps(v)), raw=True, cls="mono")]
        for name, v in sorted(settings.items())
    ]
    return (
        f"<details><summary>resolved settings ({len(rows)})</summary>"
        + table(["setting", "value"], rows, numeric_from=99)
        + "</details>"
    )


def accuracy(report: UnlearnReport) -> str:
    """The before/after accuracy table (D_f, D_r, D_test), from the report."""
    before, after = report.before, report.after
    rows = []
    for label, key in _SETS:
        k = f"{key}_acc"
        if k not in before or k not in after:
            continue
        change = after[k] - before[k]
        rows.append(
            [
                cell(label),
                num(before[k], f"before/{k}"),
                num(after[k], f"after/{k}"),
                cell(f"{change:+.2f}", numeric=True),
            ]
        )
    if "forget_target_acc" in after:
        rows.append(
            [
                cell("D_f on its targets"),
                num(before.get("forget_target_acc"), "before/forget_target_acc"),
                num(after["forget_target_acc"], "after/forget_target_acc"),
                cell("", numeric=True),
            ]
        )
    n_r = report.retain_eval_size
    note = (
        f"D_r: {val(n_r, 'retain_eval_size')} retained instances; "
        f"D_test: {val(report.test_size, 'test_size')} test images"
        + (
            f" (the surrogate images {val(report.surrogate, 'surrogate')} left out)"
            if report.surrogate
            else ""
        )
        + "."
    )
    return (
        "<h2>Accuracy before and after (%)</h2>"
        + table(["set", "before", "after", "change"], rows)
        + f'<p class="note">{note}</p>'
    )
