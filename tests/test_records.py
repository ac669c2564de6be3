"""The typed records (amnesiac.records): validation on read, exact round trips, old files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import amnesiac
from amnesiac.bench.resume import append_row, read_rows
from amnesiac.errors import ResultsFileError
from amnesiac.hashing import entry_hash
from amnesiac.ledger import GENESIS, LedgerError
from amnesiac.records import BenchRow, LedgerEntry, RecordError, UnlearnReport

REPORT = {
    "method": "l2ul",
    "dataset": "digits",
    "model": "shipped",
    "forget_indices": [3, 1],
    "forget_sha256": amnesiac.forget_sha256([3, 1]),
    "before": {"forget_acc": 100.0, "test_acc": 95.0},
    "after": {"forget_acc": 0.0, "test_acc": 94.5},
}
ENTRY = {
    "request_id": "r1",
    "dataset": "digits",
    "method": "l2ul",
    "preset": None,
    "settings": {"lr": 0.001},
    "forget_sha256": "f" * 64,
    "forget_indices": [3, 1],
    "input_model": "in.safetensors",
    "input_sha256": "a" * 64,
    "output_model": "out.safetensors",
    "output_sha256": "b" * 64,
    "metrics": {"after": {"forget_acc": 0.0}},
    "continual_row": {"round": 1},  # a key the record does not know
    "prev_hash": GENESIS,
}
ENTRY["hash"] = entry_hash(ENTRY)


@pytest.mark.parametrize(
    ("cls", "good"),
    [(UnlearnReport, REPORT), (LedgerEntry, ENTRY)],
)
def test_a_record_read_from_a_file_writes_back_exactly_its_keys(cls, good):
    # the ledger's hash covers the stored keys, so a round trip must not add or drop one
    rec = cls.from_json(good)
    assert rec.to_json() == good
    assert entry_hash(LedgerEntry.from_json(ENTRY).to_json()) == ENTRY["hash"]


@pytest.mark.parametrize(
    ("cls", "good", "field", "bad", "says"),
    [
        (UnlearnReport, REPORT, "forget_indices", None, "'forget_indices' field is None"),
        (UnlearnReport, REPORT, "before", {"test_acc": "high"}, "'before' field"),
        (UnlearnReport, REPORT, "steps", True, "'steps' field"),  # a bool is not a count
        (LedgerEntry, ENTRY, "metrics", [1], "'metrics' field"),
        (LedgerEntry, ENTRY, "output_sha256", 7, "'output_sha256' field"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(cls, good, field, bad, says):
    with pytest.raises(RecordError, match=says):
        cls.from_json({**good, field: bad})


@pytest.mark.parametrize("missing", ["method", "forget_sha256", "after"])
def test_a_missing_required_field_is_named(missing):
    d = {k: v for k, v in REPORT.items() if k != missing}
    with pytest.raises(RecordError, match=f"lacks its '{missing}' field"):
        UnlearnReport.from_json(d)


def test_a_newer_schema_asks_for_a_newer_amnesiac():
    with pytest.raises(RecordError, match="upgrade amnesiac"):
        UnlearnReport.from_json({**REPORT, "schema": UnlearnReport.SCHEMA + 1})


def test_a_new_record_carries_its_schema_and_drops_nothing_it_was_given():
    rec = UnlearnReport.from_json(REPORT).replace(out="m.safetensors", out_sha256="c" * 64)
    d = rec.to_json()
    assert d["schema"] == UnlearnReport.SCHEMA and d["out"] == "m.safetensors"
    assert UnlearnReport.from_json(d) == rec


def test_every_committed_benchmark_row_loads():
    # files written before the schema: every row of every committed grid still reads
    n = 0
    bench = Path(__file__).parents[1] / "benchmarks"
    for grid in bench.glob("*.yaml"):
        name = re.search(r"^results: (\S+)$", grid.read_text(), re.M)
        assert name, f"{grid} names no results file"
        lines = (bench / name.group(1)).read_text().splitlines()
        raw = [json.loads(line) for line in lines if line.strip().endswith("}")]
        rows = read_rows(bench / name.group(1))
        assert len(rows) == len(raw)
        for row, d in zip(rows, raw, strict=True):
            assert row.to_json() == d
            n += 1
    assert n > 100


def test_a_row_of_the_wrong_shape_is_refused_on_read_and_on_append(tmp_path):
    path = tmp_path / "r.jsonl"
    good = {"id": "a", "kind": "unlearn", "method": "l2ul", "label": "l2ul", "k": 8, "seed": 0,
            "status": "ok"}  # fmt: skip
    append_row(path, {**good, "after_test_acc": 90.0})
    assert read_rows(path)[0].value("after_test_acc") == 90.0
    append_row(path, BenchRow.from_json({**good, "seed": 1}))
    assert [r.seed for r in read_rows(path)] == [0, 1]
    with pytest.raises(RecordError, match="'k' field"):
        append_row(path, {**good, "k": "eight"})
    path.write_text(path.read_text() + json.dumps({**good, "seed": None}) + "\n")
    with pytest.raises(ResultsFileError, match=r"line 3: .*'seed' field"):
        read_rows(path)
    unlabelled = {k: v for k, v in good.items() if k != "label"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(unlabelled) + "\n")
    with pytest.raises(ResultsFileError, match=r"line 2: .*'label' field"):
        read_rows(path)


def test_ledger_record_refuses_an_outcome_of_the_wrong_shape(tmp_path):
    ckpt = amnesiac.load_pretrained("digits")
    src, out = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    amnesiac.save_checkpoint(ckpt.model, src, ckpt.meta)
    amnesiac.save_checkpoint(ckpt.model, out, ckpt.meta)
    ledger = amnesiac.Ledger(tmp_path / "ledger.jsonl")
    request = ledger.request(
        dataset="digits",
        input_model=src,
        forget_indices=[1],
        method="l2ul",
        settings={},
        output_model=out,
    )
    with pytest.raises(LedgerError, match="'steps' field"):
        ledger.record(request, {"metrics": {"after": {"forget_acc": 0.0}}, "steps": "many"})
    assert not (tmp_path / "ledger.jsonl").exists()
