"""Continual unlearning: rounds chained through the ledger, resumable, verified."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import amnesiac
from amnesiac.cli import main
from amnesiac.continual import round_indices, run_continual
from amnesiac.ledger import read_ledger
from amnesiac.models import model_meta


def test_round_indices_are_distinct_and_prefix_stable() -> None:
    y = torch.zeros(100, dtype=torch.long)
    three = round_indices(y, 3, 5, seed=1)
    assert len(torch.cat(three).unique()) == 15
    assert all(
        torch.equal(a, b) for a, b in zip(round_indices(y, 2, 5, seed=1), three[:2], strict=True)
    )


def _continual_argv(model, digits, tmp_path: Path, per_round: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Save ``model`` as a digits checkpoint and return a continual command line on it."""
    start = tmp_path / "m0.safetensors"
    meta = model_meta("cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std,
                      input_shape=[1, 8, 8], dataset="digits")  # fmt: skip
    amnesiac.save_checkpoint(model, start, meta)
    return ["continual", "--model", str(start), "--dataset", "digits", "--per-round",
            str(per_round), "--method", "neg_grad", "--out", str(tmp_path / "run"),
            "--retain-eval-size", "200", "--no-progress", "--lr", "0.01"]  # fmt: skip


def test_cli_continual_chains_rounds_and_resumes(
    tiny_model, digits, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    argv = [*_continual_argv(tiny_model, digits, tmp_path, 4), "--chained"]
    assert main([*argv, "--rounds", "2"]) == 0
    entries = read_ledger(run / "ledger.jsonl")
    assert [e["request_id"] for e in entries] == ["round-1", "round-2"]
    assert entries[1]["input_sha256"] == entries[0]["output_sha256"]
    summary = json.loads((run / "continual.json").read_text())
    assert [r["round"] for r in summary["rows"]] == [1, 2]
    assert summary["rows"][0]["round_forget_acc"] == 0.0
    assert (run / "continual.png").stat().st_size > 1000
    assert main(["verify", str(run / "ledger.jsonl")]) == 0
    capsys.readouterr()
    assert main([*argv, "--rounds", "3"]) == 0  # resumes: only round 3 runs
    out = capsys.readouterr().out
    assert "resuming after round 2" in out and "round 1:" not in out and "round 3:" in out
    assert len(read_ledger(run / "ledger.jsonl")) == 3


def test_from_original_re_solves_the_union_from_the_original(tiny_model, digits) -> None:  # type: ignore[no-untyped-def]
    config = amnesiac.make_config("neg_grad", lr=0.01, max_steps=20)
    rows = run_continual(
        tiny_model, digits, rounds=2, per_round=3, method="neg_grad", config=config, seed=4,
        retain_eval_size=50, from_original=True,
    )  # fmt: skip
    plan = round_indices(digits.train_y, 2, 3, seed=4)
    both = torch.cat(plan)
    # oracle: round 2 is one request for both rounds' instances, made to the original model
    direct = amnesiac.unlearn(
        tiny_model, forget=(digits.train_x[both], digits.train_y[both]), method="neg_grad",
        **{**config.to_dict(), "seed": config.seed + 1},
    )  # fmt: skip
    assert rows[1]["steps"] == direct.steps
    got = amnesiac.evaluate(direct.model, forget=(digits.train_x[both], digits.train_y[both]))
    assert rows[1]["all_forget_acc"] == got["forget_acc"]
    chained = run_continual(
        tiny_model, digits, rounds=2, per_round=3, method="neg_grad", config=config, seed=4,
        retain_eval_size=50,
    )  # fmt: skip
    # the first round is the same request either way (timings aside)
    assert {**rows[0], "seconds": 0} == {**chained[0], "seconds": 0}


def test_cli_continual_from_the_original_records_the_union_and_verifies(
    tiny_model, digits, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    argv = _continual_argv(tiny_model, digits, tmp_path, 3)
    assert main([*argv, "--rounds", "2"]) == 0
    entries = read_ledger(run / "ledger.jsonl")
    assert all(e["from_original"] for e in entries)
    assert entries[1]["input_sha256"] == entries[0]["input_sha256"]  # both from the original
    assert set(entries[0]["forget_indices"]) < set(entries[1]["forget_indices"])
    assert len(entries[1]["forget_indices"]) == 6
    assert main(["verify", str(run / "ledger.jsonl")]) == 0
    assert main([*argv, "--rounds", "3"]) == 0  # resumes after round 2
    assert len(read_ledger(run / "ledger.jsonl")[2]["forget_indices"]) == 9
    capsys.readouterr()
    assert main([*argv, "--rounds", "4", "--chained"]) == 2  # not the run this folder holds
    assert "does not continue" in capsys.readouterr().err


def test_ledger_rule_for_requests_re_solved_from_the_original() -> None:
    from amnesiac.ledger import start_problem

    first = {"request_id": "a", "input_sha256": "m0", "output_sha256": "m1",
             "forget_indices": [1, 2]}  # fmt: skip
    good = {"request_id": "b", "from_original": True, "input_sha256": "m0",
            "output_sha256": "m2", "forget_indices": [1, 2, 3]}  # fmt: skip
    assert start_problem([first, good], 1) is None
    assert "first request's input" in str(start_problem([first, {**good, "input_sha256": "m1"}], 1))
    dropped = {**good, "forget_indices": [2, 3]}
    assert "leaves out instances of request a" in str(start_problem([first, dropped], 1))
    chained = {"request_id": "c", "input_sha256": "m9", "output_sha256": "m3"}
    assert "previous request's model" in str(start_problem([first, chained], 1))
