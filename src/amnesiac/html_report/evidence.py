"""The evidence sections of the request page: membership attacks and LiRA (from an ``amnesiac
audit`` file) and the deletion ledger's entry with its chain check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from amnesiac.html_report import figures
from amnesiac.html_report.markup import cell, esc, facts, img, num, png_data_uri, table


@dataclass(frozen=True)
class LedgerView:
    """A ledger entry as the page shows it.

    Attributes:
        path: The ledger file.
        entry: The entry of this request.
        position: Its place in the ledger, from 1.
        total: The ledger's number of entries.
        chain_problem: The first entry where the hash chain breaks (``None``: it holds).
        hash_ok: Whether the entry's own hash matches its contents.
        same_forget_set: Whether the entry's forget set is the report's.
    """

    path: str
    entry: dict[str, Any]
    position: int
    total: int
    chain_problem: str | None
    hash_ok: bool
    same_forget_set: bool


#: The audit's rows: (label, section of the audit dict, key, decimals).
_AUDIT_ROWS = (
    ("D_f accuracy %", "accuracy", "forget_acc", 2),
    ("D_test accuracy %", "accuracy", "test_acc", 2),
    ("MIA: D_f called members %", "mia", "mia_loss_member_rate", 2),
    ("MIA: AUC D_f vs D_test", "mia", "mia_loss_auc", 3),
    ("MIA (entropy): AUC D_f vs D_test", "mia", "mia_entropy_auc", 3),
    ("MIA: attack's own AUC", "mia", "mia_loss_attack_auc", 3),
    ("LiRA: AUC D_f vs D_test", "lira", "auc", 3),
    ("LiRA: TPR % at 1% FPR", "lira", "tpr_at_1pct_fpr", 2),
    ("LiRA: TPR % at 0.1% FPR", "lira", "tpr_at_0.1pct_fpr", 2),
)


def audit_models(audit: dict[str, Any]) -> list[str]:
    """The audited models, in the audit's order (original, unlearned, retrained)."""
    return list(audit.get("accuracy", {}))


def membership(audit: dict[str, Any]) -> str:
    """The ``amnesiac audit`` numbers per model: accuracy, population attacks, LiRA, relearn
    time, CKA and the distance to the retrained model."""
    models = audit_models(audit)
    rows = []
    for label, section, key, digits in _AUDIT_ROWS:
        part = audit.get(section)
        if not part or not all(key in part.get(m, {}) for m in models):
            continue
        rows.append(
            [cell(label)]
            + [num(part[m][key], f"audit/{section}/{m}/{key}", digits) for m in models]
        )
    if "relearn_steps" in audit:
        rows.append(
            [cell("relearn steps")]
            + [num(audit["relearn_steps"][m], f"audit/relearn_steps/{m}", 0) for m in models]
        )
    cka = audit.get("cka") or {}
    if cka:
        rows.append(
            [cell("CKA vs original (D_test)")]
            + [num(cka.get(m), f"audit/cka/{m}", 4) for m in models]
        )
    lira = audit.get("lira")
    shadows = f" LiRA with {lira['shadow_models']} shadow models." if lira else ""
    relearn = audit.get("relearn_max_steps")
    notes = (
        "Forgotten looks like: AUCs near 0.5, member rate near the attack's rate on test data, "
        "TPR near the FPR, as for a model retrained without D_f."
        + shadows
        + (f" Relearn steps capped at {relearn} ({relearn + 1}: not reached)." if relearn else "")
    )
    sizes = audit.get("sizes") or {}
    if sizes:
        notes += " Sets: " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + "."
    return (
        "<h2>Can an attacker still tell? (amnesiac audit)</h2>"
        + table(["measure", *models], rows)
        + f'<p class="note">{esc(notes)}</p>'
        + _distance(audit)
    )


def _distance(audit: dict[str, Any]) -> str:
    d = (audit.get("distance") or {}).get("unlearned")
    if not d:
        return ""
    rows = [
        [
            cell(name),
            num(d[key]["agreement"], f"audit/distance/unlearned/{key}/agreement"),
            num(d[key]["js"], f"audit/distance/unlearned/{key}/js", 4),
        ]
        for name, key in (("D_test", "test"), ("D_f", "forget"))
        if key in d
    ]
    return "<h3>Unlearned against retrained</h3>" + table(
        ["set", "prediction agreement %", "JS divergence (nats)"], rows
    )


def lira_plots(audit: dict[str, Any]) -> str:
    """The LiRA score histograms of D_f against D_test, and the ROC curves ('' without LiRA)."""
    lira = audit.get("lira")
    if not lira:
        return ""
    models = [m for m in audit_models(audit) if m in lira]
    hist = img(
        png_data_uri(figures.lira_histogram_png(lira, models)),
        "histograms of the LiRA scores of D_f and D_test for each model",
        cls="plot",
    )
    has_test = all(lira[m].get("test_histogram") for m in models)
    roc = (
        img(
            png_data_uri(figures.roc_png(lira, models)),
            "ROC curves of LiRA, D_f against D_test, log-log",
            cls="plot",
        )
        if all(lira[m].get("roc") for m in models)
        else ""
    )
    note = (
        "Scores: how far each model's scaled logit lies above the shadow models that did not "
        "train on the instance. Forgotten looks like: D_f's scores where D_test's are, the ROC "
        "on the chance line."
    )
    if not (has_test and roc):
        note += (
            " This audit file has only D_f's scores (written before amnesiac stored D_test's "
            "histogram and the ROC curve); run `amnesiac audit` again to get them."
        )
    return (
        f'<h2>LiRA: D_f against D_test</h2><div class="plots wide">{hist}{roc}</div>'
        f'<p class="note">{esc(note)}</p>'
    )


def ledger_section(view: LedgerView) -> str:
    """The request's ledger entry, its hash, and the chain check."""
    e = view.entry
    chain_ok = view.chain_problem is None
    chain = (
        f'<span class="ok">holds</span> over all {view.total} entries'
        if chain_ok
        else f'<span class="bad">broken</span> at {esc(view.chain_problem)}'
    )
    own = (
        '<span class="ok">matches</span>'
        if view.hash_ok
        else '<span class="bad">does not match</span>'
    )
    same = view.same_forget_set
    items = [
        ("ledger", f"{esc(view.path)}, entry {view.position} of {view.total}"),
        ("request", esc(e.get("request_id", "?")) + (f", {esc(e['time'])}" if "time" in e else "")),
        ("hash", f'<span class="mono hash">{esc(e.get("hash", "-"))}</span> ({own} its contents)'),
        ("previous hash", f'<span class="mono hash">{esc(e.get("prev_hash", "-"))}</span>'),
        ("chain check", chain),
        ("input model", _model(e, "input")),
        ("output model", _model(e, "output")),
        (
            "forget set",
            f"{esc(e.get('forget_count', '?'))} instances, sha256 "
            f'<span class="mono hash">{esc(e.get("forget_sha256", "-"))}</span> '
            + (
                '<span class="ok">(this report\'s)</span>'
                if same
                else '<span class="bad">(not this report\'s)</span>'
            )
            + (", indices stored" if "forget_indices" in e else ", only their hash stored"),
        ),
    ]
    if e.get("from_original"):
        items.append(("from the original", "yes: re-solves every request so far"))
    entry_json = esc(json.dumps({k: v for k, v in e.items() if k != "forget_indices"}, indent=1))
    return (
        "<h2>Deletion ledger</h2>"
        + facts(items)
        + f'<details><summary>the entry (without its indices)</summary><pre class="mono">'
        f"{entry_json}</pre></details>"
    )


def _model(entry: dict[str, Any], which: str) -> str:
    return (
        f"{esc(entry.get(f'{which}_model', '-'))} "
        f'<span class="mono hash">sha256 {esc(entry.get(f"{which}_sha256", "-"))}</span>'
    )
