"""The request page and RESULTS.html: built from a real digits run, read back, held to the JSON
files they show, and opened in headless Chromium (skipped with the reason where Chromium or
Playwright is missing, and failed instead under CI, which installs them)."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import amnesiac
from amnesiac.bench import load_grid, write_report
from amnesiac.cli import main
from amnesiac.html_report import (
    LedgerView,
    class_accuracy,
    confusion_changes,
    instance_outcomes,
    model_outcomes,
    render_report_html,
)
from amnesiac.metrics.accuracy import predict_logits
from amnesiac.ops.losses import runner_up
from amnesiac.records import BenchRow
from page_check import check_page, is_blank, problems, why_no_browser

# ------------------------------------------------------------------ reading a page back


class _Reader(HTMLParser):
    """The ``data-key`` elements (key, data-value, text), the instance figures and the images."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str | None, str]] = []
        self.instances: list[dict[str, str]] = []
        self.images: list[str] = []
        self._open: list[tuple[str, str, str | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "figure" and "inst" in (a.get("class") or ""):
            self.instances.append({k[5:]: v or "" for k, v in a.items() if k.startswith("data-")})
        if a.get("data-key"):
            self._open.append((tag, str(a["data-key"]), a.get("data-value"), []))

    def handle_data(self, data: str) -> None:
        for *_, text in self._open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, key, value, text = self._open.pop()
            self.values.append((key, value, "".join(text).strip()))


def read_page(text: str) -> _Reader:
    reader = _Reader()
    reader.feed(text)
    return reader


def lookup(key: str, sources: dict[str, Any]) -> Any:
    """The value at ``key`` (a ``/`` path; ``audit/`` and ``outcomes/`` name their files)."""
    parts = key.split("/")
    node = sources[parts.pop(0)] if parts[0] in ("audit", "outcomes") else sources["report"]
    for p in parts:
        node = node[int(p)] if isinstance(node, list) else node[p]
    return node


def assert_shown(text: str, expected: Any) -> None:
    """The page's ``text`` shows ``expected`` (rounded to the decimals it shows)."""
    if text == json.dumps(expected):
        return
    if isinstance(expected, bool):
        assert text == ("yes" if expected else "no"), (text, expected)
    elif isinstance(expected, (int, float)):
        if isinstance(expected, float) and math.isnan(expected):
            assert text == "-"
            return
        digits = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - expected) <= 0.5 * 10**-digits + 1e-9, (text, expected)
    elif expected is None:
        assert text == "-"
    else:
        assert text == str(expected), (text, expected)


def assert_page_matches(values: list[tuple[str, str | None, str]], sources: dict[str, Any]) -> int:
    """Every ``data-key`` value equals the files', exactly where the page carries the value;
    returns how many were checked."""
    for key, raw, text in values:
        expected = lookup(key, sources)
        if raw is not None:
            got = json.loads(raw)
            same = got == expected or (
                isinstance(got, float) and math.isnan(got) and math.isnan(expected)
            )
            assert same, (key, got, expected)
        assert_shown(text, expected)
    return len(values)


def assert_self_contained(text: str) -> None:
    """No script, nothing fetched, every image a PNG data URI that decodes."""
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    for src in read_page(text).images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        pic = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert pic.format == "PNG" and pic.width > 0 and pic.height > 0


# ------------------------------------------------------------------ a real run on digits


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``amnesiac unlearn --html --ledger`` (relabel, so the page shows targets), an audit with
    LiRA of the same request, and ``amnesiac report --html --audit --ledger``."""
    d = tmp_path_factory.mktemp("page")
    paths = {n: d / n for n in ("u.safetensors", "r.json", "p.html", "l.jsonl", "a.json")}
    args = ["unlearn", "--dataset", "digits", "--forget", "random:8:0", "--method", "relabel",
            "--objective", "relabel", "--out", str(paths["u.safetensors"]), "--report",
            str(paths["r.json"]), "--html", str(paths["p.html"]), "--ledger",
            str(paths["l.jsonl"]), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(paths["r.json"].read_text())
    data = amnesiac.load_dataset("digits")
    original = amnesiac.load_pretrained("digits").model
    unlearned = amnesiac.load_checkpoint(paths["u.safetensors"]).model
    idx = torch.tensor(report["forget_indices"])
    forget = (data.train_x[idx], data.train_y[idx])
    retain = amnesiac.retain_eval_indices(len(data.train_y), idx, 300, 0)
    shadows = amnesiac.Shadows(  # two models that trained on none of D_f: LiRA runs, cheaply
        [original, unlearned], torch.zeros(2, len(data.train_y), dtype=torch.bool)
    )
    audit = amnesiac.audit(unlearned, original, forget=forget,
                           retain=(data.train_x[retain], data.train_y[retain]),
                           test=(data.test_x, data.test_y), shadows=shadows, forget_indices=idx,
                           relearn_max_steps=5)  # fmt: skip
    paths["a.json"].write_text(json.dumps(audit))
    page2 = d / "p2.html"
    assert main(["report", str(paths["r.json"]), "--html", str(page2), "--audit",
                 str(paths["a.json"]), "--ledger", str(paths["l.jsonl"])]) == 0  # fmt: skip
    fb, fa = predict_logits(original, forget[0]), predict_logits(unlearned, forget[0])
    tb = predict_logits(original, data.test_x).argmax(1)
    ta = predict_logits(unlearned, data.test_x).argmax(1)
    return {
        **paths,
        "p2.html": page2,
        "report": report,
        "audit": audit,
        "data": data,
        "labels": forget[1],
        "pred_before": fb.argmax(1),
        "pred_after": fa.argmax(1),
        "targets": runner_up(fb, forget[1]),
        "outcomes": {
            "class_acc_before": class_accuracy(tb, data.test_y, 10),
            "class_acc_after": class_accuracy(ta, data.test_y, 10),
        },
    }


def _assert_instances(instances: list[dict[str, str]], run: dict[str, Any]) -> None:
    """The grid shows every forget instance with the models' own predictions and targets."""
    by_index = {int(i["index"]): i for i in instances}
    assert sorted(by_index) == sorted(run["report"]["forget_indices"])
    for pos, index in enumerate(run["report"]["forget_indices"]):
        shown = by_index[index]
        assert int(shown["label"]) == int(run["labels"][pos])
        assert int(shown["before"]) == int(run["pred_before"][pos])
        assert int(shown["after"]) == int(run["pred_after"][pos])
        assert int(shown["target"]) == int(run["targets"][pos])


def test_unlearn_html_shows_the_report_the_images_and_the_ledger(run: dict[str, Any]) -> None:
    text = run["p.html"].read_text()
    assert_self_contained(text)
    page = read_page(text)
    sources = {"report": run["report"], "outcomes": run["outcomes"]}
    assert assert_page_matches(page.values, sources) > 30
    keys = {k for k, _, _ in page.values}
    for key in ("before/forget_acc", "after/test_acc", "forget_sha256", "out_sha256",
                "model_sha256", "seconds/total", "settings/objective"):  # fmt: skip
        assert key in keys, key
    _assert_instances(page.instances, run)
    assert len(page.images) == 8 + 1  # the 8 instances and the per-class chart
    entry = json.loads(run["l.jsonl"].read_text().splitlines()[-1])
    assert entry["hash"] in text and "holds</span> over all 1 entries" in text
    assert '<span class="ok">(this report\'s)</span>' in text
    assert run["report"]["out_sha256"] == entry["output_sha256"]


def test_report_command_rebuilds_the_page_with_audit_and_ledger(run: dict[str, Any]) -> None:
    text = run["p2.html"].read_text()
    assert_self_contained(text)
    page = read_page(text)
    sources = {"report": run["report"], "audit": run["audit"], "outcomes": run["outcomes"]}
    assert_page_matches(page.values, sources)
    keys = {k for k, _, _ in page.values}
    assert {"audit/lira/unlearned/auc", "audit/mia/original/mia_loss_auc"} <= keys
    assert "audit/lira/unlearned/tpr_at_0.1pct_fpr" in keys
    _assert_instances(page.instances, run)
    assert len(page.images) == 8 + 3  # instances, per-class chart, LiRA histograms and ROC
    assert "LiRA: D_f against D_test" in text and "Deletion ledger" in text


def test_report_command_refuses_what_is_not_the_run(run: dict[str, Any], capsys) -> None:  # type: ignore[no-untyped-def]
    d = run["p.html"].parent
    out = d / "refused.html"
    base = ["report", str(run["r.json"]), "--html", str(out)]
    original = amnesiac.models.pretrained_path("digits")
    other = d / "other.json"
    other.write_text(json.dumps({**run["audit"], "forget_sha256": "0" * 64}))
    tampered = d / "tampered.json"
    tampered.write_text(json.dumps({**run["report"], "forget_indices": [0, 1]}))
    bad = [
        ([*base, "--model", str(original)], "is not the unlearned model"),
        ([*base, "--audit", str(other)], "is of another forget set"),
        ([*base, "--audit", str(d / "missing.json")], "does not exist"),
        (["report", str(tampered), "--html", str(out)], "do not match its forget_sha256"),
        ([*base, "--ledger", str(d / "none.jsonl")], "does not exist"),
        (["report", str(d / "nothing.json"), "--html", str(out)], "does not exist"),
    ]
    for argv, message in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("amnesiac: error:") and message in err[0], err
    assert not out.exists()


# ------------------------------------------------------------------ the page's parts


def test_outcomes_on_hand_built_logits() -> None:
    before = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    after = torch.tensor([[0.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    y = torch.tensor([0, 1])
    out = instance_outcomes(before, after, y, [10, 20], targets=torch.tensor([2, 0]))
    assert [(o["index"], o["before"], o["after"], o["target"]) for o in out] == [
        (10, 0, 2, 2),
        (20, 1, 1, 0),
    ]
    p = math.exp(3) / (math.exp(3) + 2)
    assert out[0]["before_conf"] == pytest.approx(100 * p)
    assert out[0]["after_true_conf"] == pytest.approx(100 * (1 - p) / 2)
    with pytest.raises(ValueError, match="sizes differ"):
        instance_outcomes(before, after, y, [10])
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    pb = torch.tensor([0, 0, 0, 1, 1, 2])
    pa = torch.tensor([1, 1, 0, 0, 1, 2])
    assert class_accuracy(pa, labels, 3) == pytest.approx([100 / 3, 50.0, 100.0])
    moves = confusion_changes(pb, pa, labels, 3)
    assert moves == [
        {"true": 0, "pred": 1, "before": 0, "after": 2, "change": 2},
        {"true": 1, "pred": 0, "before": 0, "after": 1, "change": 1},
    ]
    assert confusion_changes(pb, pa, labels, 3, top=1) == moves[:1]


def test_model_outcomes_refuse_a_broken_model() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((len(x), 3), float("nan"))

    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    with pytest.raises(amnesiac.DivergenceError, match="NaN or infinite logits"):
        model_outcomes(Broken(), Broken(), forget=(x, y), test=(x, y), forget_indices=[0, 1, 2, 3])


def test_model_outcomes_take_known_test_predictions() -> None:
    """Given both models' D_test predictions (the CLI's evaluation made them), the page's
    outcomes equal those computed from the models, which then run on D_f only."""
    seen: list[int] = []

    class Counting(torch.nn.Module):
        def __init__(self, shift: int) -> None:
            super().__init__()
            self.shift = shift

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(len(x))
            cls = (x.flatten(1).sum(1).round().long() + self.shift) % 3
            return torch.eye(3)[cls] * 5

    g = torch.Generator().manual_seed(0)
    xf, yf = torch.rand(4, 1, 2, 2, generator=g), torch.tensor([0, 1, 2, 0])
    xt, yt = torch.rand(50, 1, 2, 2, generator=g), torch.randint(0, 3, (50,), generator=g)
    before, after = Counting(0), Counting(1)
    sets = {"forget": (xf, yf), "test": (xt, yt), "forget_indices": [5, 6, 7, 8]}
    full = model_outcomes(before, after, **sets)
    seen.clear()
    known = model_outcomes(
        before, after, **sets,
        test_pred_before=before(xt).argmax(1), test_pred_after=after(xt).argmax(1),
    )  # fmt: skip
    assert known == full
    assert seen == [50, 50, 4, 4]  # the two calls above, then D_f once per model


def _report(k: int, **changes: Any) -> dict[str, Any]:
    return {
        "method": "l2ul", "preset": None, "settings": {"objective": "misclassify"},
        "dataset": "digits", "model": "shipped:digits", "forget_spec": "random:8:0",
        "forget_indices": list(range(k)), "forget_sha256": amnesiac.forget_sha256(range(k)),
        "steps": 3, "stopped_by": "forgotten", "forgotten": True, "update_fraction": 1.0,
        "before": {"forget_acc": 100.0, "test_acc": 90.0},
        "after": {"forget_acc": 0.0, "test_acc": 89.0}, "seconds": {"total": 1.5},
        **changes,
    }  # fmt: skip


def _outcomes(k: int) -> dict[str, Any]:
    z = torch.eye(3)[torch.arange(k) % 3] * 4
    y = torch.arange(k) % 3
    return {
        "instances": instance_outcomes(z, z.roll(1, 1), y, list(range(k))),
        "num_classes": 3, "class_count": [5, 5, 5], "class_acc_before": [90.0, 80.0, 70.0],
        "class_acc_after": [90.0, 60.0, math.nan], "test_acc_before": 80.0,
        "test_acc_after": 75.0, "confusion_changes": [],
    }  # fmt: skip


def test_page_escapes_every_string_from_outside() -> None:
    evil = '<script>alert("x")</script>'
    report = _report(3, forget_spec=evil, model=f"/tmp/{evil}.safetensors",
                     settings={"objective": "misclassify", "note": evil})  # fmt: skip
    entry = {"request_id": evil, "hash": "ab", "prev_hash": "0" * 64, "input_model": evil}
    view = LedgerView("l.jsonl", entry, 1, 1, f"entry 1 (request {evil}): edited", False, False)
    page = render_report_html(report, outcomes=_outcomes(3), forget_x=torch.rand(3, 1, 8, 8),
                              classes=[evil, "b&c", '"q"'], ledger=view)  # fmt: skip
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "b&amp;c" in page
    assert "chain BROKEN" in page and "does not match" in page and "(not this report" in page


def test_grid_stops_at_its_cap_and_counts_the_rest() -> None:
    page = render_report_html(_report(8), outcomes=_outcomes(8), forget_x=torch.rand(8, 3, 4, 4),
                              max_images=3)  # fmt: skip
    assert len(read_page(page).instances) == 3
    assert "… and 5 more instances not shown (the grid stops at 3)" in page
    with pytest.raises(ValueError, match="same forget set"):
        render_report_html(_report(8), outcomes=_outcomes(7), forget_x=torch.rand(8, 1, 4, 4))


# ------------------------------------------------------------------ RESULTS.html


def _tables(text: str) -> list[list[list[str]]]:
    """Each table's rows of cell texts (Markdown pipe tables, or HTML tables)."""
    if "<table" not in text:
        blocks = re.findall(r"((?:^\|.*\|\n?)+)", text, flags=re.M)
        return [
            [[c.strip() for c in line.strip()[1:-1].split("|")]
             for i, line in enumerate(b.strip().splitlines()) if i != 1]
            for b in blocks
        ]  # fmt: skip
    tables = re.findall(r"<table>(.*?)</table>", text, flags=re.S)
    return [
        [
            [re.sub(r"<[^>]+>", "", c).replace("&amp;", "&").strip()
             for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", t, flags=re.S)
        ]
        for t in tables
    ]  # fmt: skip


@pytest.fixture
def results_html(tmp_path: Path) -> Path:
    """RESULTS.md and RESULTS.html of a small grid, from hand-made rows."""
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("dataset: digits\nks: [8, 32]\nseeds: [0, 1]\nspeed: false\n"
                         "methods: [neg_grad, relabel]\n")  # fmt: skip
    rows = [
        BenchRow.from_json({"id": f"{m}-{k}-{s}", "kind": "unlearn", "status": "ok", "label": m,
         "k": k, "method": m, "seed": s, "forgotten": True, "after_forget_acc": 0.0,
         "before_retain_acc": 90.0, "after_retain_acc": 88.0 - s, "before_test_acc": 90.0,
         "after_test_acc": 87.5 - k / 16 - s, "steps": 10, "seconds": {"wall": 2.0 + k}})
        for m in ("neg_grad", "relabel") for k in (8, 32) for s in (0, 1)
    ]  # fmt: skip
    md = write_report(load_grid(grid_file), rows, command="amnesiac bench g.yaml")
    return md.with_suffix(".html")


def test_bench_report_writes_results_html_with_the_same_tables(results_html: Path) -> None:
    md = results_html.with_suffix(".md").read_text()
    text = results_html.read_text()
    assert_self_contained(text)
    md_tables, html_tables = _tables(md), _tables(text)
    assert len(md_tables) >= 2 and md_tables == html_tables
    assert "2.50 ± 0.71" in text  # a frontier cell: mean ± std over the two seeds
    plots = re.findall(r"^!\[[^\]]*\]\(([^)]+)\)$", md, flags=re.M)
    assert len(plots) == 3 and len(read_page(text).images) == 3
    assert all((results_html.parent / p).is_file() for p in plots)


# ------------------------------------------------------------------ in a real browser


@pytest.fixture
def browser() -> None:
    reason = why_no_browser()
    if reason and os.environ.get("CI"):
        pytest.fail(f"the browser test must run under CI: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.mark.usefixtures("browser")
def test_pages_in_headless_chromium(run: dict[str, Any], results_html: Path) -> None:
    """What a person's browser shows: no console error, nothing fetched, every image decoded,
    the numbers of the JSON files, a screenshot that is not blank."""
    sources = {"report": run["report"], "audit": run["audit"], "outcomes": run["outcomes"]}
    for path in (run["p.html"], run["p2.html"]):
        seen = check_page(path)
        assert problems(seen) == [], path
        assert len(seen.images) == len(read_page(path.read_text()).images) >= 9
        assert all(i["complete"] and i["naturalWidth"] > 0 for i in seen.images)
        assert assert_page_matches(seen.values, sources) > 30
        _assert_instances(seen.instances, run)
    seen = check_page(results_html)
    assert problems(seen) == [] and len(seen.images) == 3
    assert all(i["naturalWidth"] > 0 for i in seen.images)
    # the checks can fail: a blank page is caught, and so is an image that does not decode
    broken = results_html.parent / "broken.html"
    broken.write_text('<html><body><img alt="x" src="data:image/png;base64,AAAA"></body></html>')
    seen = check_page(broken)
    assert is_blank(seen.screenshot)
    assert "image 'x' did not decode" in problems(seen)
