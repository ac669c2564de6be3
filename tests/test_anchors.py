"""Forget-ready models (issue 26): anchors reserved at pre-training or attached later, used by
`unlearn`, `continual`, `bench` and the ledger without being asked, released by requests that
name them, and every bad anchor input refused with one clear error that changes nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import amnesiac
from amnesiac.cli import main
from amnesiac.data.anchors import (
    attached_meta,
    images_sha256,
    reserve_rows,
    reserved_meta,
    shared_images,
    split_request,
    trained_rows,
)
from amnesiac.errors import AnchorError, InvalidForgetSetError, InvalidSettingsError
from amnesiac.hashing import file_sha256

FAST = ["--max-steps", "60", "--heal-steps", "10", "--anchored-heal-steps", "10", "--no-progress"]


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forget-ready digits ResNet-20: 200 of its training images reserved (2 epochs)."""
    out = tmp_path_factory.mktemp("ready") / "ready.safetensors"
    code = main(
        [
            "pretrain",
            "--dataset",
            "digits",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--crop-padding",
            "0",
            "--no-flip",
            "--reserve",
            "200",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


@given(
    counts=st.lists(st.integers(2, 40), min_size=2, max_size=6),
    frac=st.floats(0.0, 0.45),
    seed=st.integers(0, 5),
)
@settings(max_examples=40, deadline=None)
def test_reserve_is_stratified_distinct_sized_and_seeded(counts, frac, seed) -> None:
    y = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    n = int(frac * len(y))
    rows = reserve_rows(y, n, seed)
    assert len(rows) == n and len(set(rows.tolist())) == n
    assert torch.equal(rows, reserve_rows(y, n, seed))
    for i, c in enumerate(counts):  # each class within one image of its proportional share
        assert abs(int((y[rows] == i).sum()) - c * n / len(y)) < 1 + 1e-9
    kept = trained_rows(len(y), reserved_meta("x", rows, seed))
    assert sorted([*kept.tolist(), *rows.tolist()]) == list(range(len(y)))


def test_reserve_refuses_sizes_that_leave_nothing() -> None:
    y = torch.tensor([0, 0, 0, 1])
    with pytest.raises(InvalidSettingsError, match="between 0 and 3"):
        reserve_rows(y, 4, 0)
    with pytest.raises(InvalidSettingsError, match="classes \\[1\\]"):
        reserve_rows(y, 3, 0)


def test_split_request_releases_reserved_rows_once() -> None:
    meta = reserved_meta("digits", torch.tensor([2, 4, 6]), seed=0)
    first = split_request(meta, [1, 4])
    assert (first.forget, first.released, first.untrained) == ([1], [4], [4])
    assert first.anchors is not None and first.anchors["rows"] == [2, 6]
    again = split_request(first.anchors, [4, 6, 9])  # 4 was released before: nothing to do
    assert (again.forget, again.released, again.untrained) == ([9], [6], [4, 6])
    assert again.anchors is not None and again.anchors["released"] == [4, 6]
    none = split_request(None, [3, 1])
    assert (none.forget, none.released, none.anchors) == ([1, 3], [], None)


def test_shared_images_matches_exact_copies_only() -> None:
    x = torch.rand(6, 1, 4, 4)
    assert shared_images(x, x[[4, 1]]) == [1, 4]
    assert shared_images(x, x[[4]] + 1e-6) == []


def test_pretrain_reserve_records_the_rows_and_trains_without_them(ready, digits) -> None:
    ckpt = amnesiac.load_checkpoint(ready)
    record = ckpt.meta["anchors"]
    assert record["kind"] == "reserved" and len(record["rows"]) == 200
    assert record["rows"] == reserve_rows(digits.train_y, 200, 0).tolist()
    assert ckpt.meta["trained_by"].endswith("--reserve 200")
    anchors = amnesiac.model_anchors(ckpt.meta, train_x=digits.train_x)
    assert anchors is not None and anchors.description == "200 reserved images"
    assert torch.equal(anchors.images, digits.train_x[torch.tensor(record["rows"])])


def test_unlearn_uses_the_model_anchors_and_says_so(ready, digits, tmp_path, capsys) -> None:
    trained = trained_rows(len(digits.train_y), amnesiac.checkpoint_meta(ready)["anchors"])
    forget = trained[:6].tolist()
    (tmp_path / "f.txt").write_text("\n".join(map(str, forget)))
    report = tmp_path / "r.json"
    args = ["unlearn", "--dataset", "digits", "--model", str(ready)]
    args += ["--forget", str(tmp_path / "f.txt"), "--report", str(report), *FAST]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "anchors: 200 reserved images" in out
    saved = json.loads(report.read_text())
    assert saved["anchors"] == "200 reserved images" and saved["released"] == []
    # the run is the API's with the reserved images as surrogate=
    ckpt = amnesiac.load_checkpoint(ready)
    rows = torch.tensor(ckpt.meta["anchors"]["rows"])
    idx = torch.tensor(forget)
    result = amnesiac.unlearn(
        ckpt.model,
        forget=(digits.train_x[idx], digits.train_y[idx]),
        surrogate=digits.train_x[rows],
        max_steps=60,
        heal_steps=10,
        anchored_heal_steps=10,
    )
    assert result.steps == saved["steps"]
    assert main([*args, "--no-anchors"]) == 0
    assert "anchors: none (forget-only)" in capsys.readouterr().out


def test_forget_only_says_what_it_costs(digits, tmp_path, capsys) -> None:
    args = ["unlearn", "--dataset", "digits", "--forget", "random:4:0", *FAST]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "anchors: none (forget-only)" in out and "test points at k=8" in out
    assert "--surrogate" in out and "attach-anchors" in out


def test_a_request_naming_reserved_images_releases_them(ready, digits, tmp_path, capsys) -> None:
    meta = amnesiac.checkpoint_meta(ready)
    reserved = meta["anchors"]["rows"]
    trained = trained_rows(len(digits.train_y), meta["anchors"])
    (tmp_path / "f.txt").write_text(
        "\n".join(map(str, [reserved[0], reserved[5], *trained[:3].tolist()]))
    )
    ledger, out1 = tmp_path / "ledger.jsonl", tmp_path / "m1.safetensors"
    args = ["unlearn", "--dataset", "digits", "--model", str(ready), "--ledger", str(ledger)]
    assert main([*args, "--forget", str(tmp_path / "f.txt"), "--out", str(out1), *FAST]) == 0
    out = capsys.readouterr().out
    assert "released: 2 requested images" in out and "198 left" in out
    assert "forgetting 3 of" in out
    after = amnesiac.checkpoint_meta(out1)["anchors"]
    assert after["released"] == sorted([reserved[0], reserved[5]]) and len(after["rows"]) == 198
    entry = amnesiac.Ledger(ledger).entries()[-1]
    assert entry["anchors_released"] == sorted([reserved[0], reserved[5]])
    # a request of reserved images only: released, weights unchanged, recorded
    (tmp_path / "g.txt").write_text(f"{reserved[7]}\n")
    out2 = tmp_path / "m2.safetensors"
    args2 = ["unlearn", "--dataset", "digits", "--model", str(out1), "--ledger", str(ledger)]
    assert main([*args2, "--forget", str(tmp_path / "g.txt"), "--out", str(out2), *FAST]) == 0
    assert "the weights are unchanged" in capsys.readouterr().out
    one, two = amnesiac.load_checkpoint(out1), amnesiac.load_checkpoint(out2)
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(two.meta["anchors"]["rows"]) == 197
    assert amnesiac.Ledger(ledger).verify().entries == 2


def test_a_request_that_empties_the_reserve_then_a_clear_error(digits, tmp_path, capsys) -> None:
    model = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "pretrain",
                "--dataset",
                "digits",
                "--epochs",
                "1",
                "--reserve",
                "12",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    reserved = amnesiac.checkpoint_meta(model)["anchors"]["rows"]
    (tmp_path / "f.txt").write_text("\n".join(map(str, reserved)))
    emptied = tmp_path / "e.safetensors"
    base = ["unlearn", "--dataset", "digits", *FAST]
    assert (
        main(
            [
                *base,
                "--model",
                str(model),
                "--forget",
                str(tmp_path / "f.txt"),
                "--out",
                str(emptied),
            ]
        )
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "x.safetensors"
    code = main([*base, "--model", str(emptied), "--forget", "random:4:0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "reserved anchor set is empty" in err and "Traceback" not in err
    assert not out.exists()


def test_attach_anchors_makes_a_model_forget_ready(digits, tmp_path, capsys) -> None:
    out = tmp_path / "ready.safetensors"
    shipped = str(amnesiac.models.pretrained_path("digits"))
    assert (
        main(
            [
                "attach-anchors",
                "--model",
                shipped,
                "--anchors",
                "digits:test:0:100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = amnesiac.checkpoint_meta(out)["anchors"]
    assert record == attached_meta("digits:test:0:100", digits.test_x[:100])
    capsys.readouterr()
    args = ["unlearn", "--dataset", "digits", "--model", str(out), "--forget", "random:4:0"]
    assert main([*args, *FAST]) == 0
    printed = capsys.readouterr().out
    grown = "grown to 2,000 by shifted, flipped and mixed copies of them"
    assert "D_test: the 350 test images outside them" in printed
    assert f"anchors: 100 attached images ({grown}" in printed


def _no_file(path: Path) -> bool:
    return not path.exists() and not list(path.parent.glob(path.name + "*"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fashion-mnist-shaped", "have shape \\(1, 28, 28\\) but the model takes \\(1, 8, 8\\)"),
        ("rgb", "have 3 channels but the model takes 1"),
        ("empty", "holds no image files"),
        ("digits:train:0:100", "names a training split"),
    ],
)
def test_attach_refuses_bad_anchors_and_writes_nothing(spec, message, tmp_path, capsys) -> None:
    from PIL import Image

    if spec == "fashion-mnist-shaped":
        (tmp_path / "imgs").mkdir()
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "imgs" / "a.png")
        spec = str(tmp_path / "imgs")
    elif spec == "rgb":
        (tmp_path / "imgs").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
        spec = str(tmp_path / "imgs")
    elif spec == "empty":
        (tmp_path / "imgs").mkdir()
        spec = str(tmp_path / "imgs")
    out = tmp_path / "out.safetensors"
    shipped = str(amnesiac.models.pretrained_path("digits"))
    code = main(["attach-anchors", "--model", shipped, "--anchors", spec, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert pytest.importorskip("re").search(message, err)
    assert _no_file(out)


def test_changed_attached_images_are_refused(digits, tmp_path) -> None:
    meta = {"anchors": {**attached_meta("digits:test:0:10", digits.test_x[:10]), "count": 10}}
    meta["anchors"]["images_sha256"] = images_sha256(digits.test_x[:9])
    with pytest.raises(AnchorError, match="changed since they were attached"):
        amnesiac.model_anchors(meta)


def test_the_api_refuses_labelled_or_forgotten_anchors(tiny_model, forget8, digits) -> None:
    x, _y = forget8
    model_sha = [p.detach().clone() for p in tiny_model.parameters()]
    with pytest.raises(InvalidForgetSetError, match="unlabeled images"):
        amnesiac.unlearn(tiny_model, forget=forget8, surrogate=(digits.test_x, digits.test_y))
    with pytest.raises(InvalidForgetSetError, match="2 surrogate images are also in the forget"):
        amnesiac.unlearn(tiny_model, forget=forget8, surrogate=torch.cat([digits.test_x, x[:2]]))
    for a, b in zip(model_sha, tiny_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_continual_takes_the_model_anchors_and_surrogate(ready, digits, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["continual", "--dataset", "digits", "--model", str(ready), "--rounds", "2"]
    args += ["--per-round", "3", "--retain-eval-size", "100", "--out", str(out), *FAST]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "anchors: 200 reserved images" in printed
    reserved = set(amnesiac.checkpoint_meta(ready)["anchors"]["rows"])
    entries = amnesiac.Ledger(out / "ledger.jsonl").entries()
    assert all(not set(e["forget_indices"]) & reserved for e in entries)
    # the settings recorded are the ones each round ran with (its seed): rerun, they give the
    # round's model bit for bit
    assert [e["settings"]["seed"] for e in entries] == [0, 1]
    ckpt = amnesiac.load_checkpoint(ready)
    anchors = amnesiac.model_anchors(ckpt.meta, train_x=digits.train_x)
    assert anchors is not None
    idx = torch.tensor(entries[1]["forget_indices"])
    again = amnesiac.unlearn(
        ckpt.model,
        forget=(digits.train_x[idx], digits.train_y[idx]),
        surrogate=anchors.images,
        **entries[1]["settings"],
    )
    kept = amnesiac.load_checkpoint(out / "round-2.safetensors").model.state_dict()
    for k, v in again.model.state_dict().items():
        assert torch.equal(v, kept[k]), k
    assert amnesiac.Ledger(out / "ledger.jsonl").verify().entries == 2
    shipped = ["continual", "--dataset", "digits", "--rounds", "1", "--per-round", "3"]
    shipped += ["--surrogate", "digits:test:0:100", "--out", str(tmp_path / "s"), *FAST]
    assert main(shipped) == 0
    printed = capsys.readouterr().out
    assert "anchors: 100 images from digits:test:0:100 (grown to 2,000 by" in printed
    assert "uses them as given); D_test: the 350" in printed


def test_ledger_record_refuses_a_model_without_the_request_anchors(ready, digits, tmp_path) -> None:
    meta = amnesiac.checkpoint_meta(ready)
    reserved = meta["anchors"]["rows"]
    ledger = amnesiac.Ledger(tmp_path / "ledger.jsonl")
    out = tmp_path / "out.safetensors"
    request = ledger.request(
        dataset="digits",
        input_model=ready,
        forget_indices=[reserved[0]],
        method="l2ul",
        settings={},
        output_model=out,
    )
    assert request.forget_indices == [] and request.rows is not None
    assert request.rows.released == [reserved[0]]
    ckpt = amnesiac.load_checkpoint(ready)
    amnesiac.save_checkpoint(ckpt.model, out, ckpt.meta)  # the old anchors: refused
    with pytest.raises(amnesiac.LedgerError, match="does not carry the anchors"):
        ledger.record(request, {"metrics": None})
    amnesiac.save_checkpoint(ckpt.model, out, {**ckpt.meta, "anchors": request.rows.anchors})
    entry = ledger.record(request, {"metrics": None})
    assert entry["untrained"] == [reserved[0]] and file_sha256(out) == entry["output_sha256"]
    assert ledger.verify().accuracy_checked == 0


def test_bench_cells_use_the_model_anchors(ready, tmp_path) -> None:
    import shutil

    from amnesiac.bench import load_grid, run_grid

    shutil.copy(ready, tmp_path / "ready.safetensors")
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: t\ndataset: digits\nmodel: ready.safetensors\nks: [4]\nseeds: [0]\n"
        "retain_eval_size: 100\nspeed: false\nresults: rows.jsonl\nreport: R.md\n"
        "settings: {max_steps: 40, heal_steps: 5, anchored_heal_steps: 5}\n"
        "methods:\n  - method: l2ul\n  - {method: l2ul, label: forget-only, surrogate: none}\n"
    )
    run_grid(load_grid(grid), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    got = {r["label"]: r for r in rows if r.get("kind") == "unlearn"}
    assert got["l2ul"]["anchors"] == "200 reserved images"
    assert got["forget-only"]["anchors"] is None
    reserved = set(amnesiac.checkpoint_meta(ready)["anchors"]["rows"])
    assert got["l2ul"]["status"] == "ok"
    assert got["l2ul"]["forget_sha256"] == got["forget-only"]["forget_sha256"]
    data = amnesiac.load_dataset("digits")
    trained = trained_rows(len(data.train_y), amnesiac.checkpoint_meta(ready)["anchors"])
    drawn = amnesiac.random_rows(data.train_y, 4, 0, trained)
    assert not set(drawn.tolist()) & reserved
    assert amnesiac.forget_sha256(drawn) == got["l2ul"]["forget_sha256"]


def test_with_anchors_the_mas_penalty_is_anchored_reg_weight(tiny_model, forget8, digits) -> None:
    sur = digits.test_x[:100]
    fast = {"max_steps": 60, "heal_steps": 5, "anchored_heal_steps": 5, "seed": 0}
    off = amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, **fast)
    assert "importance" not in off.seconds and off.config["anchored_reg_weight"] == 0.0
    on = amnesiac.unlearn(
        tiny_model, forget=forget8, surrogate=sur, anchored_reg_weight=1.0, **fast
    )
    assert "importance" in on.seconds and "reg" in on.history[-1]
    alone = amnesiac.unlearn(tiny_model, forget=forget8, **fast)  # forget-only: reg_weight
    assert "importance" in alone.seconds


def test_a_forget_only_setting_given_with_anchors_is_named_in_a_warning(
    tiny_model, forget8, digits, caplog
) -> None:
    sur = digits.test_x[:100]
    fast = {"max_steps": 30, "seed": 0, "shrink_steps": 0}
    with caplog.at_level(logging.WARNING, logger="amnesiac"):
        amnesiac.unlearn(tiny_model, forget=forget8, surrogate=sur, heal_steps=5, **fast)
    assert "heal_steps act only without anchors; with anchors set anchored_heal_steps" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="amnesiac"):
        amnesiac.unlearn(tiny_model, forget=forget8, heal_steps=5, **fast)  # forget-only
        amnesiac.unlearn(  # both given: a setting for each kind of run
            tiny_model, forget=forget8, surrogate=sur, heal_steps=5, anchored_heal_steps=5, **fast
        )
    assert "act only without anchors" not in caplog.text


def test_the_anchors_line_says_when_the_method_grows_the_set() -> None:
    from amnesiac.cli.common import anchors_line

    grows = amnesiac.make_config("l2ul")
    plain = amnesiac.make_config("l2ul", anchored_augment_to=0)
    line = anchors_line("500 reserved images", 500, grows, 10000)
    assert line.startswith("anchors: 500 reserved images (grown to 2,000 by shifted")
    assert line.endswith("; D_test: the 10000 test images outside them")
    for n, config in ((2000, grows), (5000, grows), (500, plain)):
        line = anchors_line("some images", n, config, 10)
        assert line == "anchors: some images; D_test: the 10 test images outside them"
    # a method without the setting never grows its anchors
    assert "grown" not in anchors_line("x", 5, amnesiac.make_config("neg_grad"), 10)
