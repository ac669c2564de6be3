"""The page a person reads to decide whether a deletion request was honoured.

One self-contained HTML file per request (``amnesiac unlearn --html``, ``amnesiac report
REPORT.json --html``): what ran and on which models (with their hashes), the before/after
accuracy table, every forgotten image with what the model said about it before and after,
where the rest of the model moved (test accuracy per class, the confusions that moved most),
and, where given, the ``amnesiac audit`` numbers with the LiRA histogram and ROC curve, and the
request's deletion-ledger entry with the chain check. Images are PNG data URIs; the page has no
script and fetches nothing.

The functions are pure: from the report dict, :func:`model_outcomes`' dict (the only step that
runs the models), an audit dict and a :class:`LedgerView`, to an HTML string. Writing the file
is the caller's (the CLI writes it atomically).

Example:
    >>> from amnesiac.html_report import model_outcomes
    >>> out = model_outcomes(model, model, forget=(x_f, y_f), test=(x_t, y_t),
    ...                      forget_indices=list(range(len(y_f))))
    >>> out["test_acc_before"] == out["test_acc_after"], out["confusion_changes"]
    (True, [])
"""

from amnesiac.html_report.evidence import LedgerView
from amnesiac.html_report.grid import DEFAULT_MAX_IMAGES
from amnesiac.html_report.outcomes import (
    class_accuracy,
    confusion_changes,
    instance_outcomes,
    model_outcomes,
)
from amnesiac.html_report.render import build_report_html, ledger_view, render_report_html
from amnesiac.html_report.summary import relabel_run

__all__ = [
    "DEFAULT_MAX_IMAGES",
    "LedgerView",
    "build_report_html",
    "class_accuracy",
    "confusion_changes",
    "instance_outcomes",
    "ledger_view",
    "model_outcomes",
    "relabel_run",
    "render_report_html",
]
