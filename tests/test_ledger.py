"""The deletion ledger: hash chain, request ordering, verify, and crash safety under SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import amnesiac
from amnesiac.cli import main
from amnesiac.data import Splits
from amnesiac.ledger import (
    LedgerError,
    append_entry,
    check_chain,
    checked_entries,
    file_sha256,
    read_ledger,
)
from amnesiac.models import model_meta


def test_chain_detects_edits_reorders_and_removals(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    for i in range(3):
        append_entry(path, {"request_id": f"r{i}", "output_model": f"m{i}", "output_sha256": "x"})
    entries = read_ledger(path)
    assert check_chain(entries) is None
    edited = [dict(e) for e in entries]
    edited[1]["output_model"] = "other"
    assert check_chain(edited) is not None and check_chain(edited).index == 1  # type: ignore[union-attr]
    assert check_chain([entries[0], entries[2]]).index == 1  # type: ignore[union-attr]
    assert check_chain([entries[1], entries[0], entries[2]]).index == 0  # type: ignore[union-attr]
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(LedgerError, match="line 4 is not valid JSON"):
        checked_entries(path)


def _save_tiny(model: torch.nn.Module, digits: Splits, path: Path) -> None:
    meta = model_meta(
        "cnn", in_channels=1, num_classes=10, mean=digits.mean, std=digits.std,
        input_shape=[1, 8, 8], dataset="digits",
    )  # fmt: skip
    amnesiac.save_checkpoint(model, path, meta)


def _cmd(model: Path, out: Path, ledger: Path, forget: str) -> list[str]:
    return ["unlearn", "--model", str(model), "--dataset", "digits", "--forget", forget,
            "--method", "neg_grad", "--out", str(out), "--ledger", str(ledger),
            "--retain-eval-size", "200", "--no-progress", "--max-steps", "30"]  # fmt: skip


def test_requests_chain_and_verify(tiny_model, digits, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    m0, m1, m2 = (tmp_path / f"m{i}.safetensors" for i in range(3))
    ledger = tmp_path / "ledger.jsonl"
    _save_tiny(tiny_model, digits, m0)
    assert main(_cmd(m0, m1, ledger, "random:4:0")) == 0
    # the same command again: already done, nothing appended
    assert main(_cmd(m0, m1, ledger, "random:4:0")) == 0
    assert len(read_ledger(ledger)) == 1
    # the next request must start from the ledger's latest model
    before = ledger.read_bytes()
    assert main(_cmd(m0, m2, ledger, "random:4:1")) == 2
    assert "current one is" in capsys.readouterr().err
    assert ledger.read_bytes() == before and not m2.exists()
    assert main([*_cmd(m1, m2, ledger, "random:4:1"), "--hash-indices"]) == 0
    entries = read_ledger(ledger)
    assert [("forget_indices" in e) for e in entries] == [True, False]
    assert entries[1]["input_sha256"] == entries[0]["output_sha256"] == file_sha256(m1)
    assert main(["verify", str(ledger)]) == 0
    assert "2 entries" in capsys.readouterr().out
    # a replaced model, and an edited entry, are both caught
    m2.write_bytes(m1.read_bytes())
    assert main(["verify", str(ledger)]) == 2
    assert "does not match the recorded SHA-256" in capsys.readouterr().err
    text = ledger.read_text().replace('"forget_count":4', '"forget_count":3', 1)
    ledger.write_text(text)
    assert main(["verify", str(ledger)]) == 2
    assert "entry 1" in capsys.readouterr().err


def _consistent(folder: Path) -> int:
    """Number of complete entries; asserts every entry is whole and its model matches."""
    ledger = folder / "ledger.jsonl"
    entries = checked_entries(ledger)
    for e in entries:
        assert file_sha256(folder / e["output_model"]) == e["output_sha256"]
    return len(entries)


def test_sigkill_at_random_points_never_leaves_a_partial_request(
    tiny_model, digits, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Kill `amnesiac unlearn --ledger` at random moments; the ledger stays consistent, and
    rerunning the same command completes the request."""
    m0 = tmp_path / "m0.safetensors"
    _save_tiny(tiny_model, digits, m0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def command(folder: Path) -> list[str]:
        args = _cmd(m0, folder / "m1.safetensors", folder / "ledger.jsonl", "random:4:0")
        return [sys.executable, "-m", "amnesiac", *args]

    # one full run gives the time window to kill in
    ref = tmp_path / "ref"
    ref.mkdir()
    t0 = time.perf_counter()
    subprocess.run(command(ref), env=env, check=True, capture_output=True)
    full = time.perf_counter() - t0
    assert _consistent(ref) == 1
    rng = random.Random(0)
    trials, kept, completed_before_kill = 20, 0, 0
    for trial in range(trials):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        proc = subprocess.Popen(
            command(folder), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.3, 1.05) * full)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        n = _consistent(folder)  # raises if partial
        assert n in (0, 1)
        completed_before_kill += n
        kept += 1
        if trial % 4 == 0 and n == 0:  # rerunning the same command completes the request
            subprocess.run(command(folder), env=env, check=True, capture_output=True)
            assert _consistent(folder) == 1
            assert (
                json.loads((folder / "ledger.jsonl").read_text())["output_sha256"]
                == (read_ledger(ref / "ledger.jsonl")[0]["output_sha256"])
            )
    assert kept == trials
    print(f"{kept}/{trials} SIGKILL trials consistent ({completed_before_kill} had completed)")


def test_the_ledger_rules_as_a_library(
    tiny_model: torch.nn.Module, digits: Splits, tmp_path: Path
) -> None:
    """Ledger.request / record / verify without the CLI: chained, then re-solved from the
    original (the union of every request so far), and refusals that change nothing."""
    from amnesiac.ledger import Ledger, forget_sha256

    m0 = tmp_path / "m0.safetensors"
    _save_tiny(tiny_model, digits, m0)
    ledger = Ledger(tmp_path / "ledger.jsonl")

    def run(request: Any, model_in: torch.nn.Module) -> dict[str, Any]:
        idx = torch.tensor(request.forget_indices)
        forget = (digits.train_x[idx], digits.train_y[idx])
        result = amnesiac.unlearn(model_in, forget=forget, method="neg_grad", max_steps=30)
        amnesiac.save_checkpoint(
            result.model, request.output_model, amnesiac.load_checkpoint(m0).meta
        )
        after = amnesiac.evaluate(result.model, forget=forget)
        return ledger.record(request, {"metrics": {"after": after}, "steps": result.steps})

    first = ledger.request(
        dataset="digits",
        input_model=m0,
        forget_indices=[5, 1, 9],
        method="neg_grad",
        settings={},
        output_model=tmp_path / "m1.safetensors",
    )
    with pytest.raises(LedgerError, match="before recording"):
        ledger.record(first, {})
    assert ledger.entries() == []
    entry = run(first, tiny_model)
    assert (
        entry["forget_sha256"] == forget_sha256([1, 5, 9]) == forget_sha256(torch.tensor([9, 5, 1]))
    )
    assert ledger.current_model() == (
        (tmp_path / "m1.safetensors").resolve(),
        entry["output_sha256"],
    )
    # chaining must start from the current model
    with pytest.raises(LedgerError, match="current one is"):
        ledger.request(
            dataset="digits",
            input_model=m0,
            forget_indices=[2],
            method="neg_grad",
            settings={},
            output_model=tmp_path / "m2.safetensors",
        )
    # re-solving from the original must start from the original, and forgets the union
    with pytest.raises(LedgerError, match="not the original model"):
        ledger.request(
            dataset="digits",
            input_model=tmp_path / "m1.safetensors",
            forget_indices=[2],
            method="neg_grad",
            settings={},
            output_model=tmp_path / "m2.safetensors",
            from_original=True,
        )
    again = ledger.request(
        dataset="digits",
        input_model=m0,
        forget_indices=[2, 5],
        method="neg_grad",
        settings={},
        output_model=tmp_path / "m2.safetensors",
        from_original=True,
    )
    assert again.forget_indices == [1, 2, 5, 9] and again.fields["from_original"] is True
    run(again, tiny_model)
    assert ledger.verify().entries == 2 and ledger.verify().accuracy_checked == 2


def _request_from_file(
    model: torch.nn.Module, digits: Splits, folder: Path, indices: list[int], *extra: str
) -> tuple[Path, Path]:
    """One ledger request forgetting ``indices`` (a .txt in that order) from a saved copy of
    ``model``; returns the output model and the ledger."""
    m0, m1, ledger = folder / "m0.safetensors", folder / "m1.safetensors", folder / "ledger.jsonl"
    _save_tiny(model, digits, m0)
    spec = folder / "forget.txt"
    spec.write_text("".join(f"{i}\n" for i in indices))
    assert main([*_cmd(m0, m1, ledger, str(spec)), *extra]) == 0
    return m1, ledger


def test_one_forget_hash_in_report_checkpoint_and_ledger(
    tiny_model: torch.nn.Module, digits: Splits, tmp_path: Path
) -> None:
    from amnesiac.ledger import forget_sha256

    report = tmp_path / "report.json"
    m1, ledger = _request_from_file(
        tiny_model, digits, tmp_path, [42, 3, 17], "--report", str(report)
    )
    h = forget_sha256([3, 17, 42])
    assert json.loads(report.read_text())["forget_sha256"] == h
    assert read_ledger(ledger)[0]["forget_sha256"] == h
    assert amnesiac.load_checkpoint(m1).meta["unlearned"]["forget_sha256"] == h


def test_an_old_ledger_hashed_in_stored_order_still_verifies(
    tiny_model: torch.nn.Module, digits: Splits, tmp_path: Path
) -> None:
    import hashlib

    from amnesiac.ledger import canonical

    _, ledger = _request_from_file(tiny_model, digits, tmp_path, [17, 3, 42])
    entry = read_ledger(ledger)[0]
    # rewrite it as the old ledger did: indices in request order, hashed in that order
    old = {k: v for k, v in entry.items() if k not in ("prev_hash", "hash")}
    old["forget_indices"] = [17, 3, 42]
    old["forget_sha256"] = hashlib.sha256(canonical([17, 3, 42])).hexdigest()
    assert old["forget_sha256"] != entry["forget_sha256"]
    ledger.unlink()
    append_entry(ledger, old)
    assert main(["verify", str(ledger)]) == 0


def test_cli_request_re_solved_from_the_original(
    tiny_model: torch.nn.Module, digits: Splits, tmp_path: Path
) -> None:
    m0, m1, m2 = (tmp_path / f"m{i}.safetensors" for i in range(3))
    ledger = tmp_path / "ledger.jsonl"
    _save_tiny(tiny_model, digits, m0)
    assert main(_cmd(m0, m1, ledger, "random:4:0")) == 0
    assert main([*_cmd(m1, m2, ledger, "random:4:1"), "--from-original"]) == 2  # not the original
    assert len(read_ledger(ledger)) == 1 and not m2.exists()
    assert main([*_cmd(m0, m2, ledger, "random:4:1"), "--from-original"]) == 0
    first, second = read_ledger(ledger)
    assert second["from_original"] is True and second["input_sha256"] == first["input_sha256"]
    assert set(first["forget_indices"]) < set(second["forget_indices"])
    assert second["forget_count"] == len(set(second["forget_indices"])) > 4
    assert main(["verify", str(ledger)]) == 0
