"""The benchmark harness end to end on the digits grid, and its report built from the rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import amnesiac
from amnesiac.bench import (
    current_rows,
    load_grid,
    read_rows,
    run_grid,
    summarize,
    write_report,
)
from amnesiac.bench.tables import choice_table, frontier_table, reads_of
from amnesiac.cli import main
from amnesiac.models import create_model
from amnesiac.models.checkpoint import model_meta, save_checkpoint
from amnesiac.records import BenchRow

GRID = Path(__file__).parents[1] / "benchmarks" / "digits.yaml"


def test_grid_expansion_and_errors(tmp_path: Path) -> None:
    grid = load_grid(GRID)
    kinds = [c.kind for c in grid.cells]
    assert kinds[0] == "speed"
    retrain = [c for c in grid.cells if c.method == "retrain"]
    assert len(retrain) == 1 and retrain[0].k == 8
    assert len({c.id for c in grid.cells}) == len(grid.cells)
    common = tmp_path / "common.yaml"
    common.write_text(
        "dataset: digits\nks: [8]\nseeds: [0]\nsettings: {precision: bf16, lr: 0.5}\n"
        "methods: [l2ul, {method: neg_grad, settings: {lr: 0.1}}]\n"
    )
    g = load_grid(common)
    assert g.settings == {"precision": "bf16", "lr": 0.5}
    by_method = {c.method: c.settings for c in g.cells}
    assert by_method["l2ul"] == {"precision": "bf16", "lr": 0.5}
    assert by_method["neg_grad"] == {"precision": "bf16", "lr": 0.1}  # the entry's own wins
    assert by_method["speed"] == {"precision": "bf16"}  # measured at the grid's precision
    common.write_text("dataset: digits\nks: [8]\nseeds: [0]\nsettings: [1]\nmethods: [l2ul]\n")
    with pytest.raises(ValueError, match="settings must be a mapping"):
        load_grid(common)
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: digits\nmethods: [{label: x}]\n")
    with pytest.raises(ValueError, match=r"missing key .ks.*missing key .seeds."):
        load_grid(bad)


def test_digits_grid_end_to_end(tmp_path: Path, capsys) -> None:
    grid_file = tmp_path / "digits.yaml"
    shutil.copy(GRID, grid_file)
    assert main(["bench", str(grid_file), "--no-progress"]) == 0
    rows = read_rows(tmp_path / "digits_results.jsonl")
    grid = load_grid(grid_file)
    assert len(rows) == len(grid.cells)
    assert all(r.ok for r in rows), [r.error for r in rows]
    unlearn = [r for r in rows if r.kind == "unlearn"]
    for r in unlearn:
        assert r.settings_hash and r.forget_sha256 and r.steps is not None and r.threads
        for key in (
            "before_test_acc",
            "after_test_acc",
            "torch",
            "cpu",
            "before_mia_loss_auc",
            "after_mia_loss_member_rate",
            "after_mia_entropy_auc",
        ):
            assert r.value(key) is not None, key
    speed = next(r for r in rows if r.kind == "speed")
    assert speed.value("pgd_efficiency") > 0 and speed.value("eval_efficiency") > 0
    # resume: a second run does nothing new
    assert main(["bench", str(grid_file), "--no-progress"]) == 0
    assert len(read_rows(tmp_path / "digits_results.jsonl")) == len(rows)
    # the report is built from the rows
    assert main(["bench", str(grid_file), "--report"]) == 0
    text = (tmp_path / "DIGITS_RESULTS.md").read_text()
    assert "amnesiac bench" in text and "do not edit by hand" in text
    assert "## Membership inference" in text and "## Frontier" in text
    assert f"ran {len(rows)} of these cells" in text and "(the whole grid," in text
    assert "## Continual unlearning" in text and "| 3 |" in text
    assert (tmp_path / "digits_continual_l2ul_3x4_seed0.png").stat().st_size > 1000
    continual = next(r for r in rows if r.kind == "continual")
    assert [x["round"] for x in continual.rounds or []] == [1, 2, 3]
    for s in summarize(rows):
        assert f"| {s['label']} | {s['k']} |" in text
    for png in ("digits_test_acc_vs_k.png", "digits_seconds.png", "digits_drop_vs_seconds.png"):
        assert (tmp_path / png).stat().st_size > 1000
    l2ul8 = [r for r in unlearn if r.label == "l2ul" and r.k == 8]
    assert l2ul8 and all(r.value("after_forget_acc") == 0.0 for r in l2ul8)


def test_frontier_table_pivots_drop_by_k() -> None:
    def row(label: str, k: int, seed: int, drop: float, forgotten: bool) -> BenchRow:
        return BenchRow.from_json({
            "id": f"{label}-{k}-{seed}",
            "method": "neg_grad",
            "kind": "unlearn",
            "status": "ok",
            "label": label,
            "k": k,
            "seed": seed,
            "forgotten": forgotten,
            "after_forget_acc": 0.0,
            "before_retain_acc": 90.0,
            "after_retain_acc": 90.0,
            "before_test_acc": 90.0,
            "after_test_acc": 90.0 - drop,
            "steps": 1,
            "seconds": {"wall": 1.0},
        })  # fmt: skip

    rows = [
        row("a", 8, 0, 1.0, True),
        row("a", 8, 1, 3.0, False),
        row("a", 32, 0, 2.0, True),
        row("b", 32, 0, 0.5, True),
    ]
    lines = frontier_table(summarize(rows))
    assert lines[0] == "| method | k=8 | k=32 |"
    assert lines[2] == "| a | 2.00 ± 1.41 (1/2) | 2.00 (1/1) |"
    assert lines[3] == "| b |  | 0.50 (1/1) |"


def test_choice_table_puts_methods_in_blocks_by_what_they_read() -> None:
    def row(label: str, method: str, k: int, drop: float, **extra: object) -> BenchRow:
        return BenchRow.from_json(
            {
                **_unlearn_row(label, k, 0, 10.0).to_json(),
                "method": method,
                "after_test_acc": 90.0 - drop,
                **extra,
            }
        )

    rows = [
        row("ngr", "neg_grad_retain", 32, 0.3),
        row("fo", "l2ul", 32, 3.0, audited=True, after_lira_auc=0.1),
        row("fo", "l2ul", 128, 10.0),
        row("jit", "jit", 32, 0.1),
        row("sur", "l2ul", 32, 0.6, surrogate="fashion-mnist:test:0:5000"),
        row("scar", "scar", 32, 0.5),
    ]
    lines = choice_table(summarize(rows), rows)
    assert lines[0].startswith("| reads | method | k=32: D_test drop / D_f acc | k=128:")
    body = [line.split(" | ")[:3] for line in lines[2:]]
    assert body == [
        ["| forget only", "jit", "0.10 / 0.0%"],
        ["| forget only", "fo", "3.00 / 0.0%"],
        ["| forget + unlabeled images", "scar", "0.50 / 0.0%"],
        ["| forget + unlabeled images", "sur", "0.60 / 0.0%"],
        ["| forget + D_r", "ngr", "0.30 / 0.0%"],
    ]
    assert lines[3].endswith("| 0.100 | 10 / 10 |")  # fo's LiRA AUC; its seconds at both ks
    assert lines[2].endswith("| - | 10 / - |")  # jit: not audited, no k=128 row


def _unlearn_row(label: str, k: int, seed: int, seconds: float) -> BenchRow:
    return BenchRow.from_json({
        "id": f"{label}-{k}-{seed}", "kind": "unlearn", "status": "ok", "label": label, "k": k,
        "method": "neg_grad", "seed": seed, "forgotten": True, "after_forget_acc": 0.0,
        "before_retain_acc": 90.0, "after_retain_acc": 90.0, "before_test_acc": 90.0,
        "after_test_acc": 89.0, "steps": 1, "seconds": {"wall": seconds},
    })  # fmt: skip


def _ran(settings: dict, status: str = "ok") -> BenchRow:
    """A row that ran with ``settings`` (what :func:`ran_with` reads)."""
    return BenchRow(id="x", kind="unlearn", method="l2ul", label="l2ul", k=32, seed=0,
                    status=status, settings=settings)  # fmt: skip


def _speed_line(grid_file: Path, rows: list[BenchRow]) -> str | None:
    grid = load_grid(grid_file)
    text = write_report(grid, rows, command="amnesiac bench g.yaml").read_text()
    after = text.split("## Speed\n\n", 1)
    return after[1].split("\n", 1)[0] if len(after) == 2 else None


def test_speed_comparison_comes_from_the_grid_compare_key(tmp_path: Path) -> None:
    from amnesiac.bench import Compare

    grid_file = tmp_path / "g.yaml"
    head = "dataset: digits\nks: [32]\nseeds: [0]\nspeed: false\n"
    methods = "methods: [retrain, l2ul, {method: l2ul, label: l2ul (paper), preset: paper}]\n"
    grid_file.write_text(head + methods)
    # without the key: retrain against l2ul (and its paper preset) at k=32, seed 0
    assert load_grid(grid_file).compare == Compare()
    rows = [_unlearn_row("retrain", 32, 0, 600.0), _unlearn_row("l2ul", 32, 0, 50.0)]
    paper = _unlearn_row("l2ul (paper)", 32, 0, 80.0)
    assert _speed_line(grid_file, [*rows, paper]) == (
        "k=32, seed 0: `l2ul` 50.0 s, `l2ul` paper preset 80.0 s, `retrain` 600.0 s. "
        "`retrain` / `l2ul` = **12.0x**; paper preset / `l2ul` = **1.60x**."
    )
    assert _speed_line(grid_file, rows) == (
        "k=32, seed 0: `l2ul` 50.0 s, `retrain` 600.0 s. `retrain` / `l2ul` = **12.0x**."
    )
    assert _speed_line(grid_file, rows[:1]) is None  # a row missing: no comparison
    # another pair, size and seed, with a variant of the method
    grid_file.write_text(
        head.replace("[32]", "[8]").replace("[0]", "[1]")
        + "methods: [finetune, neg_grad, {method: neg_grad, label: ng2, settings: {lr: 0.1}}]\n"
        + "compare: {baseline: finetune, method: neg_grad, k: 8, seed: 1, "
        "variants: {ng2: at lr 0.1}}\n"
    )
    rows = [_unlearn_row(label, 8, 1, t) for label, t in (("finetune", 9.0), ("neg_grad", 3.0),
                                                          ("ng2", 6.0))]  # fmt: skip
    assert _speed_line(grid_file, rows) == (
        "k=8, seed 1: `neg_grad` 3.0 s, `neg_grad` at lr 0.1 6.0 s, `finetune` 9.0 s. "
        "`finetune` / `neg_grad` = **3.0x**; at lr 0.1 / `neg_grad` = **2.00x**."
    )
    grid_file.write_text(head + methods + "compare: false\n")
    assert load_grid(grid_file).compare is None
    assert _speed_line(grid_file, [*rows, paper]) is None


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        ("[retrain]", "compare must be false or a mapping with keys among 'baseline'"),
        ("{baseline: retrain, other: 1}", "compare must be false or a mapping"),
        ("{k: 0}", r"compare\.k must be an integer >= 1, got 0"),
        ("{seed: -1}", r"compare\.seed must be an integer >= 0"),
        ("{method: [l2ul]}", r"compare\.method must be a label"),
        ("{variants: [a]}", r"compare\.variants must be a mapping of labels"),
        ("{baseline: finetune}", "no entry of methods labelled 'finetune' runs k=32, seed 0"),
        ("{k: 8}", "no entry of methods labelled 'retrain' runs k=8"),
        ("{variants: {l2ul (paper): paper preset, typo: x}}", "labelled 'typo'"),
    ],
)
def test_compare_key_is_validated(tmp_path: Path, compare: str, message: str) -> None:
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(
        "dataset: digits\nks: [32]\nseeds: [0]\n"
        "methods: [retrain, l2ul, {method: l2ul, label: l2ul (paper), preset: paper},"
        " {method: finetune, section: ablation}]\n"
        f"compare: {compare}\n"
    )
    with pytest.raises(ValueError, match=message):
        load_grid(grid_file)


def test_failed_cell_is_recorded_and_grid_goes_on(tmp_path: Path) -> None:
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(
        "name: g\ndataset: digits\nks: [4]\nseeds: [0]\nspeed: false\nmethods:\n"
        "  - {method: neg_grad, settings: {lr: -1}}\n"
        "  - {method: neg_grad, label: ok, settings: {max_steps: 2}}\n"
    )
    assert main(["bench", str(grid_file), "--no-progress"]) == 0
    rows = read_rows(tmp_path / "results.jsonl")
    assert [r.status for r in rows] == ["failed", "ok"]
    assert "lr must be > 0" in (rows[0].error or "")
    # a torn last line (an interrupted append) is ignored
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write('{"id": "torn", "sta')
    assert len(read_rows(tmp_path / "results.jsonl")) == 2
    json.dumps([r.to_json() for r in rows])


def test_parallel_workers_and_stale_rows_rerun(tmp_path: Path) -> None:
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(
        "name: g\ndataset: digits\nks: [4]\nseeds: [0, 1]\nspeed: false\nworkers: 2\n"
        "methods:\n  - {method: neg_grad, settings: {max_steps: 3}}\n"
    )
    grid = load_grid(grid_file)
    assert grid.workers == 2
    rows = run_grid(grid, progress=False)
    assert sorted(r.seed for r in rows) == [0, 1]
    assert all(r.ok and r.workers == 2 and (r.threads or 0) >= 1 for r in rows)
    # same cells run one at a time give the same models (a worker changes only the speed)
    serial = run_grid(grid, results=tmp_path / "serial.jsonl", progress=False, workers=1)
    by_seed = {r.seed: r for r in serial}
    for r in rows:
        assert r.value("after_test_acc") == by_seed[r.seed].value("after_test_acc")
    results = tmp_path / "results.jsonl"
    # a row from before a setting existed is current while that setting is at its default
    older = [{**r.to_json(), "settings": {k: v for k, v in r.settings.items()
                                          if k != "shrink_steps"}} for r in rows]  # fmt: skip
    results.write_text("".join(json.dumps(r) + "\n" for r in older))
    assert len(current_rows(grid, results)) == 2
    # a row run with other settings (say, older defaults) is stale: left out and rerun
    stale = [{**r.to_json(), "settings": {**r.settings, "lr": 0.5}, "after_test_acc": -1.0}
             for r in rows]  # fmt: skip
    results.write_text("".join(json.dumps(r) + "\n" for r in stale))
    assert current_rows(grid, results) == []
    again = run_grid(grid, progress=False)
    assert len(again) == 2 and all(r.value("after_test_acc") >= 0 for r in again)
    assert len(read_rows(results)) == 4


def test_bench_workers_must_be_positive(tmp_path: Path, capsys) -> None:
    assert main(["bench", str(GRID), "--workers", "0", "--results", str(tmp_path / "r")]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    bad = tmp_path / "w.yaml"
    bad.write_text("dataset: digits\nks: [4]\nseeds: [0]\nworkers: 0\nmethods: [neg_grad]\n")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        load_grid(bad)


def test_audited_cells_get_lira_relearn_and_cka(digits, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AMNESIAC_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = create_model("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std)
    recipe = amnesiac.TrainRecipe(epochs=2, batch_size=64, lr=0.05, crop_padding=0, flip=False)
    amnesiac.train_classifier(model, digits.train_x, digits.train_y, recipe)
    meta = model_meta("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std,
                      dataset="digits", recipe=recipe.to_dict())  # fmt: skip
    save_checkpoint(model, tmp_path / "m.safetensors", meta)
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(
        "name: g\ndataset: digits\nmodel: m.safetensors\nks: [4]\nseeds: [0, 1]\nspeed: false\n"
        "audit: {ks: [4], seeds: [0], shadows: 2}\n"
        "methods:\n  - {method: neg_grad, settings: {max_steps: 3}}\n"
    )
    grid = load_grid(grid_file)
    assert grid.shadows == 2 and [c.audit for c in grid.cells] == [True, False]
    by_seed = {r.seed: r for r in run_grid(grid, progress=False)}
    audited, plain = by_seed[0].to_json(), by_seed[1].to_json()
    assert audited["audited"] and "audited" not in plain and "relearn_steps" not in plain
    assert audited["lira_shadow_models"] == 2
    for when in ("before", "after"):
        assert 0.0 <= audited[f"{when}_lira_auc"] <= 1.0
        assert 0.0 <= audited[f"{when}_lira_tpr_at_1pct_fpr"] <= 100.0
    assert 0 <= audited["relearn_steps"] <= 201 and 0.0 < audited["cka"] <= 1.0 + 1e-6
    assert len(list((tmp_path / "cache" / "shadows").glob("*.safetensors"))) == 2
    # a row from before the cell was audited is not current: the cell reruns with the audit
    results = tmp_path / "results.jsonl"
    unaudited = {k: v for k, v in audited.items() if k != "audited"}
    results.write_text(json.dumps(unaudited) + "\n" + json.dumps(plain) + "\n")
    assert [r.seed for r in current_rows(grid, results)] == [1]
    assert main(["bench", str(grid_file), "--no-progress"]) == 0
    assert main(["bench", str(grid_file), "--report"]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Audit" in text and "2 shadow models" in text
    assert "| neg_grad | 4 | 0 |" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(grid_file.read_text().replace("shadows: 2", "shadows: 1"))
    with pytest.raises(ValueError, match=r"audit\.shadows must be 0"):
        load_grid(bad)


def test_a_setting_added_later_counts_at_its_old_behaviour() -> None:
    # l2ul's forget_scale_k came after rows were recorded; 0 reproduces the earlier behaviour
    from amnesiac.bench.grid import Cell
    from amnesiac.bench.runner import cell_config, cell_settings, ran_with

    paper = Cell("p", "l2ul", "paper", {"max_steps": 100}, 32, 0, "fashion-mnist", "shipped")
    ours = Cell("l2ul", "l2ul", None, {}, 32, 0, "fashion-mnist", "shipped")
    for cell, current in ((paper, True), (ours, False)):
        recorded = cell_config(cell).to_dict()
        del recorded["forget_scale_k"]
        assert ran_with(_ran(recorded), cell_settings(cell, anchored=False), "unlearn") is current


def test_a_setting_removed_where_it_did_nothing_does_not_make_a_row_stale() -> None:
    # retrain took the step-loop settings (max_steps, stop, ...) and ignored them until they
    # were split off; its rows recorded them, and still describe today's retrain
    from amnesiac.bench.grid import Cell
    from amnesiac.bench.runner import cell_config, cell_settings, ran_with

    cell = Cell("retrain", "retrain", None, {}, 32, 0, "fashion-mnist", "shipped")
    recorded = {**cell_config(cell).to_dict(), "max_steps": 0, "stop": "budget", "heal_steps": 0}
    settings = cell_settings(cell, anchored=False)
    assert ran_with(_ran(recorded), settings, "unlearn")
    # a recorded setting the method never had is still a mismatch
    assert not ran_with(_ran({**recorded, "nonsense": 1}), settings, "unlearn")
    assert not ran_with(_ran({**recorded, "lr": 0.5}), settings, "unlearn")


def test_the_rescue_leaves_rows_that_ended_well_current_and_reruns_failed_ones() -> None:
    # rescue_clip_grad_norm came after rows were recorded; it acts only on a run that diverged,
    # so a row that ended well ran as it would today, and a failed row (maybe a divergence the
    # rescue now saves) runs again
    from amnesiac.bench.grid import Cell
    from amnesiac.bench.runner import cell_config, cell_settings, ran_with

    cell = Cell("ngr", "neg_grad_retain", None, {}, 32, 0, "fashion-mnist", "shipped")
    recorded = cell_config(cell).to_dict()
    del recorded["rescue_clip_grad_norm"]
    assert ran_with(_ran(recorded, "ok"), cell_settings(cell, anchored=False), "unlearn")
    assert not ran_with(_ran(recorded, "failed"), cell_settings(cell, anchored=False), "unlearn")
    full = cell_config(cell).to_dict()
    assert ran_with(_ran(full, "failed"), cell_settings(cell, anchored=False), "unlearn")


def test_speed_probe_at_bf16_reports_the_speedup(tiny_model, digits) -> None:
    from amnesiac.bench.speed import measure_speed

    out = measure_speed(tiny_model, digits.train_x, batch=64, iters=2, eval_n=256, precision="bf16")
    assert out["precision_speedup"] > 0 and out["pgd_efficiency"] > 0
    assert "precision_speedup" not in measure_speed(
        tiny_model, digits.train_x, batch=64, iters=2, eval_n=256
    )


def test_surrogate_rows_measure_d_test_outside_the_anchors(tmp_path: Path) -> None:
    grid_file = tmp_path / "sur.yaml"
    grid_file.write_text(
        "dataset: digits\nks: [4]\nseeds: [0]\nspeed: false\ntest_rows: [200, 450]\n"
        "settings: {max_steps: 30, stop: budget}\n"
        "methods: [l2ul, {method: l2ul, label: l2ul + surrogate, "
        "surrogate: 'digits:test:0:200'}]\n"
    )
    grid = load_grid(grid_file)
    assert grid.test_rows == (200, 450)
    plain, anchored = grid.cells
    assert anchored.surrogate == "digits:test:0:200" and plain.surrogate is None
    assert plain.id != anchored.id
    rows = run_grid(grid, progress=False)
    assert [r.status for r in rows] == ["ok", "ok"], [r.error for r in rows]
    model = amnesiac.load_pretrained("digits").model
    d = amnesiac.load_dataset("digits")
    half = amnesiac.evaluate(model, test=(d.test_x[200:], d.test_y[200:]))["test_acc"]
    for r in rows:
        assert r.test_rows == [200, 450]
        assert r.value("before_test_acc") == pytest.approx(half)
    with_anchor = {r.label: r for r in rows}["l2ul + surrogate"]
    assert with_anchor.surrogate == "digits:test:0:200"
    for bad, message in (
        ("test_rows: [0, 450]\n", "overlaps test_rows"),
        ("", "set test_rows to the other rows"),
        ("test_rows: [5, 2]\n", "test_rows must be"),
    ):
        grid_file.write_text(
            f"dataset: digits\nks: [4]\nseeds: [0]\n{bad}"
            "methods: [{method: l2ul, surrogate: 'digits:test:0:200'}]\n"
        )
        with pytest.raises(ValueError, match=message):
            load_grid(grid_file)


def test_report_repeats_the_tables_of_included_grids(tmp_path: Path) -> None:
    """``include``: the report shows another grid's results table from that grid's own rows,
    and says where they came from; a missing file or a method that needs surrogate images
    without them is refused up front."""
    other = tmp_path / "other.yaml"
    other.write_text(
        "name: other\ndataset: digits\nks: [4]\nseeds: [0]\nspeed: false\n"
        "results: other.jsonl\nreport: OTHER.md\nsettings: {max_steps: 20, stop: budget}\n"
        "methods: [relabel]\n"
    )
    rows = run_grid(load_grid(other), progress=False)
    assert [r.status for r in rows] == ["ok"], rows
    main_file = tmp_path / "main.yaml"
    main_file.write_text(
        "name: main\ndataset: digits\nks: [4]\nseeds: [0]\nspeed: false\n"
        "settings: {max_steps: 0}\nmethods: [neg_grad]\ninclude: [other.yaml]\n"
    )
    grid = load_grid(main_file)
    text = write_report(grid, [], command="amnesiac bench main.yaml").read_text()
    assert "## Included: other" in text and "1 of 1 cells" in text and "`OTHER.md`" in text
    assert "| relabel (capped at 20 steps) | 4 |" in text
    main_file.write_text(main_file.read_text().replace("other.yaml", "nowhere.yaml"))
    with pytest.raises(ValueError, match=r"nowhere\.yaml is not a file"):
        load_grid(main_file)
    main_file.write_text("dataset: digits\nks: [4]\nseeds: [0]\nmethods: [scar]\n")
    with pytest.raises(ValueError, match="reads unlabeled in-domain images"):
        load_grid(main_file)


def test_rows_cut_below_their_methods_budget_are_labelled_capped() -> None:
    from amnesiac.bench.report import capped_at

    def row(label: str, preset: str | None, steps: int, stopped: str, seed: int) -> BenchRow:
        return BenchRow.from_json({
            "id": f"{label}-{seed}", "kind": "unlearn", "status": "ok", "label": label,
            "method": "l2ul",
            "preset": preset, "k": 8, "seed": seed, "settings": {"max_steps": steps},
            "stopped_by": stopped, "forgotten": stopped == "forgotten", "steps": steps,
            "after_forget_acc": 50.0, "after_retain_acc": 90.0, "after_test_acc": 90.0,
            "before_retain_acc": 91.0, "before_test_acc": 91.0, "seconds": {"wall": 1.0},
        })  # fmt: skip

    capped = row("paper", "paper", 100, "max_steps", 0)
    assert capped_at(capped) == 100  # the paper preset's own budget is 2000
    assert capped_at(row("paper", "paper", 100, "forgotten", 1)) is None  # stopped on its own
    assert capped_at(row("paper", "paper", 2000, "max_steps", 0)) is None  # its own budget
    assert capped_at(row("l2ul", None, 1000, "max_steps", 0)) is None
    labels = [
        s["label"]
        for s in summarize(
            [
                capped,
                row("paper", "paper", 100, "forgotten", 1),
                row("l2ul", None, 1000, "forgotten", 0),
            ]
        )
    ]
    assert labels == ["paper (capped at 100 steps)", "l2ul"]


def test_a_setting_that_acts_only_with_anchors_leaves_forget_only_rows_current() -> None:
    # anchored_reg_weight came after the forget-only rows and acts only with anchors: a
    # forget-only row ran as it would today, an anchored one (MAS was on then) did not
    from amnesiac.bench.grid import Cell
    from amnesiac.bench.runner import cell_config, cell_settings, ran_with

    cell = Cell("l2ul", "l2ul", None, {}, 32, 0, "fashion-mnist", "shipped")
    recorded = cell_config(cell).to_dict()
    del recorded["anchored_reg_weight"]
    assert ran_with(_ran(recorded), cell_settings(cell, anchored=False), "unlearn")
    assert not ran_with(_ran(recorded), cell_settings(cell, anchored=True), "unlearn")


def test_a_setting_that_acts_only_without_anchors_leaves_anchored_rows_current() -> None:
    # spread_targets became the default after the anchored rows and acts only without anchors
    # (anchored_spread_targets takes its place): an anchored row ran as it would today
    from amnesiac.bench.grid import Cell
    from amnesiac.bench.runner import cell_config, cell_settings, ran_with

    cell = Cell("l2ul", "l2ul", None, {}, 32, 0, "fashion-mnist", "shipped")
    recorded = cell_config(cell).to_dict()
    del recorded["anchored_spread_targets"]
    recorded["spread_targets"] = False
    assert ran_with(_ran(recorded), cell_settings(cell, anchored=True), "unlearn")
    assert not ran_with(_ran(recorded), cell_settings(cell, anchored=False), "unlearn")
    # a setting the others leave unused does not count either (nothing to spread without
    # nearest_target)
    cell = Cell("l2ul", "l2ul", None, {"nearest_target": False}, 32, 0, "fashion-mnist", "shipped")
    recorded = cell_config(cell).to_dict()
    recorded["spread_targets"] = False
    assert ran_with(_ran(recorded), cell_settings(cell, anchored=False), "unlearn")


def test_a_row_whose_method_gets_other_data_today_is_stale(tmp_path) -> None:
    # amun uses D_r when given; its rows from before the bench handed it D_r ran forget-only
    from amnesiac.bench.grid import Cell
    from amnesiac.bench.resume import cell_inputs, row_inputs

    amun = Cell("amun", "amun", None, {}, 8, 0, "digits", "shipped")
    assert cell_inputs(amun, anchored=False) == ["retain"]

    def row(method: str, **fields: object) -> BenchRow:
        head = {"id": "x", "kind": "unlearn", "method": method, "label": method, "k": 8}
        return BenchRow.from_json({**head, "seed": 0, "status": "ok", **fields})

    assert row_inputs(row("amun")) == []  # an old row: forget-only
    assert row_inputs(row("amun", inputs=["retain"])) == ["retain"]
    assert row_inputs(row("scar", surrogate="fashion-mnist:test:0:5000")) == ["surrogate"]
    assert row_inputs(row("scar")) == ["surrogate"]  # scar cannot run without them
    assert row_inputs(row("neg_grad_retain")) == ["retain"]
    assert row_inputs(row("l2ul", anchors="2,000 reserved images")) == ["surrogate"]
    # what the choice table says a row read is the same rule
    assert reads_of(row("amun", inputs=["retain"])) == "forget + D_r"
    assert reads_of(row("amun")) == "forget only"
    assert reads_of(row("l2ul", surrogate="none")) == "forget only"
    assert reads_of(row("nonsense")) == "unknown"
