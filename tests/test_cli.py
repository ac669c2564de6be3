"""The CLI, in-process: real runs on digits, and bad input that must change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import amnesiac
from amnesiac.cli import main


def test_methods_lists_every_method(capsys) -> None:
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for m in amnesiac.list_methods():
        assert m.name in out


def test_unlearn_writes_model_report_and_table(tmp_path: Path, capsys) -> None:
    out, report, forget = tmp_path / "u.safetensors", tmp_path / "r.json", tmp_path / "f.txt"
    code = main(
        [
            "unlearn",
            "--dataset",
            "digits",
            "--forget",
            "random:8:0",
            "--method",
            "l2ul",
            "--n-adv",
            "4",
            "--proxy-size",  # adversarial examples with proxies resist forgetting (l2ul docs)
            "0",
            "--out",
            str(out),
            "--report",
            str(report),
            "--forget-out",
            str(forget),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "D_f (forget)" in text and "D_test" in text and "stopped by" in text
    rep = json.loads(report.read_text())
    assert rep["settings"]["n_adv"] == 4 and rep["method"] == "l2ul"
    assert set(rep["before"]) == set(rep["after"]) == {"forget_acc", "retain_acc", "test_acc"}
    assert rep["after"]["forget_acc"] == 0.0 and rep["forgotten"]
    assert len(rep["forget_indices"]) == 8 and "torch" in rep["versions"]
    assert {"adversarial", "importance", "unlearn", "total"} <= set(rep["seconds"])
    assert amnesiac.load_checkpoint(out).meta["unlearned"]["method"] == "l2ul"
    # evaluate reads the written model and the forget file
    assert (
        main(["evaluate", "--model", str(out), "--dataset", "digits", "--forget", str(forget)]) == 0
    )
    assert "forget_acc" in capsys.readouterr().out


def test_pretrain_then_unlearn_with_it(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "pretrain",
                "--dataset",
                "digits",
                "--arch",
                "cnn",
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--no-flip",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    assert "epoch 2/2: test accuracy" in capsys.readouterr().out
    meta = amnesiac.load_checkpoint(model).meta
    assert meta["recipe"]["epochs"] == 2 and meta["recipe"]["flip"] is False
    assert (
        main(
            [
                "unlearn",
                "--model",
                str(model),
                "--dataset",
                "digits",
                "--forget",
                "class:3:4:1",
                "--method",
                "neg_grad",
                "--preset",
                "paper",
                "--lr",
                "0.05",
                "--no-progress",
            ]
        )
        == 0
    )


def test_help_shows_method_settings(capsys) -> None:
    assert main(["unlearn", "--method", "neg_grad_retain", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--retain-batch-size" in out and "--lr" in out


BAD = [
    (
        ["unlearn", "--dataset", "digits", "--forget", "random:8", "--method", "l2u1"],
        "Did you mean 'l2ul'",
    ),
    (["unlearn", "--dataset", "digits", "--forget", "random:99999"], "99999"),
    (["unlearn", "--dataset", "digits", "--forget", "nope.txt"], "nope.txt"),
    (["unlearn", "--dataset", "digitz", "--forget", "random:8"], "Did you mean 'digits'"),
    (["unlearn", "--dataset", "digits", "--forget", "random:8", "--lr", "-1"], "lr must be > 0"),
    (
        ["unlearn", "--dataset", "digits", "--forget", "random:8", "--model", "missing.pt"],
        "does not exist",
    ),
    (
        ["unlearn", "--dataset", "digits", "--forget", "random:8", "--preset", "fast"],
        "no preset 'fast'",
    ),
    (
        ["unlearn", "--dataset", "digits", "--forget", "random:8", "--bogus", "1"],
        "unrecognized arguments",
    ),
    (
        [
            "unlearn",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            "/nonexistent",
            "--forget",
            "random:8",
            "--model",
            "DIGITS",
        ],
        "shape",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    argv: list[str], message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if "DIGITS" in argv:
        argv = [
            str(amnesiac.models.pretrained_path("digits")) if a == "DIGITS" else a for a in argv
        ]
        if not Path("/usr/share/datasets/fashion-mnist").is_dir():
            pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path / "out.safetensors"
    report = tmp_path / "report.json"
    code = main([*argv, "--out", str(out), "--report", str(report), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("amnesiac: error")]
    assert len(lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_output_folder_must_exist(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "unlearn",
            "--dataset",
            "digits",
            "--forget",
            "random:4",
            "--out",
            str(tmp_path / "no" / "m.safetensors"),
        ]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_python_m_entry_point() -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "amnesiac", "methods"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and "l2ul" in r.stdout


def test_unlearn_says_when_a_diverged_run_was_redone_bounded(tmp_path: Path, capsys) -> None:
    import torch

    from amnesiac.models.checkpoint import save_checkpoint

    # the shipped digits model with its classifier's logits 100x larger (overconfident):
    # unbounded, neg_grad_retain goes to NaN within a few steps
    ckpt = amnesiac.load_pretrained("digits")
    with torch.no_grad():
        for p in list(ckpt.model.parameters())[-2:]:
            p.mul_(100.0)
    model, report = tmp_path / "oc.safetensors", tmp_path / "r.json"
    save_checkpoint(ckpt.model, model, ckpt.meta)
    argv = ["unlearn", "--model", str(model), "--dataset", "digits", "--forget", "random:8:0",
            "--method", "neg_grad_retain", "--max-steps", "60", "--no-progress"]  # fmt: skip
    assert main([*argv, "--report", str(report)]) == 0
    assert "a first run diverged" in capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert "nan" in rep["rescued_from"] and rep["settings"]["clip_grad_norm"] == 20.0
    assert "diverged" in rep["seconds"]
    # without the rescue the same run is an error, one line, exit 2
    assert main([*argv, "--rescue-clip-grad-norm", "0"]) == 2
    assert "loss became nan" in capsys.readouterr().err
