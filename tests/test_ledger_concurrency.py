"""The ledger under concurrent requests (issue 27): processes released together by a barrier,
concurrent `amnesiac unlearn --ledger` commands, and a lock whose holder was killed."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import amnesiac
from amnesiac.models import pretrained_path

TRIALS = 3
PROCESSES = 5


def _request_and_record(
    folder: str, i: int, barrier: mp.synchronize.Barrier, out: mp.Queue
) -> None:
    """One process: a request from the shipped digits model, its model written, then (with the
    others, at the barrier) ``record``; puts ``(i, "ok" | error message)``."""
    ledger = amnesiac.Ledger(Path(folder) / "ledger.jsonl")
    src = pretrained_path("digits")
    request = ledger.request(
        dataset="digits",
        input_model=src,
        forget_indices=[i],
        method="l2ul",
        settings={},
        output_model=Path(folder) / f"m{i}.safetensors",
    )
    ckpt = amnesiac.load_checkpoint(src)
    amnesiac.save_checkpoint(ckpt.model, request.output_model, {**ckpt.meta, "worker": i})
    outcome = {"metrics": {"after": _forget_acc(ckpt.model, [i])}}
    barrier.wait()
    try:
        ledger.record(request, outcome)
        out.put((i, "ok"))
    except amnesiac.LedgerError as e:
        out.put((i, str(e)))


def _forget_acc(model: object, rows: list[int]) -> dict[str, float]:
    data = amnesiac.load_dataset("digits")
    return amnesiac.evaluate(model, forget=(data.train_x[rows], data.train_y[rows]))  # type: ignore[arg-type]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_requests_released_together_record_exactly_one(tmp_path, trial) -> None:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_request_and_record, args=(str(tmp_path), i, barrier, out))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    winners = [i for i, r in results.items() if r == "ok"]
    assert len(winners) == 1, results
    ledger = amnesiac.Ledger(tmp_path / "ledger.jsonl")
    entries = ledger.entries()
    assert len(entries) == 1 and entries[0]["forget_indices"] == [winners[0]]
    current = tmp_path / f"m{winners[0]}.safetensors"
    for i, message in results.items():
        if i != winners[0]:
            assert f"current model is now {current.resolve()}" in message
    # a loser run again from the current model is recorded
    loser = next(i for i in results if i != winners[0])
    again = ledger.request(
        dataset="digits",
        input_model=current,
        forget_indices=[loser],
        method="l2ul",
        settings={},
        output_model=tmp_path / "again.safetensors",
    )
    ckpt = amnesiac.load_checkpoint(current)
    amnesiac.save_checkpoint(ckpt.model, again.output_model, ckpt.meta)
    with pytest.raises(amnesiac.LedgerError, match="lacks the number verify checks"):
        ledger.record(again, {"metrics": None})
    ledger.record(again, {"metrics": {"after": _forget_acc(ckpt.model, [loser])}})
    assert ledger.verify().entries == 2


@pytest.mark.parametrize("trial", range(2))
def test_concurrent_unlearn_commands_record_exactly_one(tmp_path, trial) -> None:
    ledger = tmp_path / "ledger.jsonl"
    cmd = [sys.executable, "-m", "amnesiac", "unlearn", "--dataset", "digits", "--no-progress"]
    cmd += ["--max-steps", "20", "--heal-steps", "0", "--ledger", str(ledger)]
    procs = [
        subprocess.Popen(
            [*cmd, "--forget", f"random:2:{i}", "--out", str(tmp_path / f"m{i}.safetensors")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2, 2, 2], outs
    for code, (_, err) in zip(codes, outs, strict=True):
        assert "Traceback" not in err
        if code == 2:
            assert "current model is now" in err
    assert len(amnesiac.Ledger(ledger).entries()) == 1


def test_a_lock_held_by_a_killed_process_blocks_nobody(tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from amnesiac._io import file_lock\n"
            f"with file_lock({str(ledger)!r}):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    t0 = time.monotonic()
    from amnesiac.ledger import append_entry

    append_entry(ledger, {"request_id": "a", "output_model": "x", "output_sha256": "0" * 64})
    assert time.monotonic() - t0 < 10
    assert [e["request_id"] for e in amnesiac.Ledger(ledger).entries()] == ["a"]
