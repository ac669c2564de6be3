"""More than one process: data-parallel training, shadow models and the grid shared out over
ranks, on this CPU with gloo (each multi-process test starts 2 ranks with torchrun)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import amnesiac
from amnesiac import distributed
from amnesiac.bench import load_grid, read_rows
from amnesiac.bench.resume import append_row
from amnesiac.cli import main
from amnesiac.errors import InvalidSettingsError
from amnesiac.metrics.lira import lira_offline, scaled_logit
from amnesiac.shadows import train_shadows
from amnesiac.training import PRETRAIN_SETUPS, rank_part
from distributed_worker import RECIPE, SHADOW_RECIPE, digits_model, state_hash

WORKER = Path(__file__).with_name("distributed_worker.py")
#: The largest difference in test accuracy (points) allowed between 2-rank and 1-process
#: training of the digits CNN: the two see the same batches, but BatchNorm normalizes each
#: half-batch on its own and the sums run in another order (measured over seeds 0-4: 0.00,
#: 0.22, 0.00, -0.22, 0.00 points; 1 point is 4.5 of the 450 test images)
ACCURACY_TOLERANCE = 1.0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def torchrun(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in 2 ranks (gloo) and fail with their output if any rank fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*cmd, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


# ------------------------------------------------------------------ one process: the helpers
def test_one_process_is_rank_0_of_1(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert not distributed.launched() and not distributed.init() and not distributed.active()
    distributed.barrier()  # no-ops
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.all_reduce_min(7) == 7
    with distributed.local():
        assert not distributed.active()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(InvalidSettingsError, match=r"RANK.*not set; start the processes with"):
        distributed.init()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InvalidSettingsError, match="WORLD_SIZE='two' is not an integer"):
        distributed.world_size()


@pytest.mark.parametrize(("n", "world"), [(0, 2), (7, 1), (7, 2), (10, 3), (3, 4)])
def test_shares_are_disjoint_and_cover(n: int, world: int) -> None:
    shares = [distributed.share(range(n), rank=r, world=world) for r in range(world)]
    flat = sorted(i for s in shares for i in s)
    assert flat == list(range(n))  # disjoint and complete
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(InvalidSettingsError, match="rank must be in"):
        distributed.share(range(n), rank=world, world=world)


@pytest.mark.parametrize(("m", "world"), [(64, 2), (5, 2), (1, 2), (7, 4), (3, 1)])
def test_each_rank_gets_an_equal_part_of_a_batch(m: int, world: int) -> None:
    parts = [rank_part(m, r, world) for r in range(world)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == -(-m // world)
    assert set(torch.cat(parts).tolist()) == set(range(m))  # every image of the batch is used
    if m % world == 0:
        assert sorted(torch.cat(parts).tolist()) == list(range(m))  # each once


def test_append_row_from_many_writers_and_after_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    cell = {"kind": "unlearn", "method": "l2ul", "label": "l2ul", "k": 8, "seed": 0, "status": "ok"}
    first = json.dumps({"id": "a", **cell})
    path.write_text(f'{first}\n{{"id": "torn", "x": [1, 2')  # a writer killed mid-line
    payload = "x" * 20_000  # far above one atomic write

    def write(who: int) -> None:
        for i in range(25):
            append_row(path, {"id": f"{who}-{i}", **cell, "payload": payload})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r.id for r in read_rows(path)]
    assert ids[0] == "a" and "torn" not in ids
    assert sorted(ids[1:]) == sorted(f"{w}-{i}" for w in range(4) for i in range(25))


# ------------------------------------------------------------------ two ranks (torchrun, gloo)
def test_two_ranks_train_like_one_process(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    torchrun(str(WORKER), "train", str(tmp_path), cwd=tmp_path)
    seen = ranks(tmp_path)
    # the checkpoint rank 0 wrote is what every rank holds, and every rank loads it alike
    assert seen[0]["memory"] == seen[1]["memory"] == seen[0]["file"] == seen[1]["file"]
    assert seen[0]["test_acc"] == seen[1]["test_acc"]
    one = amnesiac.train_classifier(digits_model(), digits.train_x, digits.train_y, RECIPE)
    single = amnesiac.evaluate(one, test=(digits.test_x, digits.test_y))["test_acc"]
    assert abs(seen[0]["test_acc"] - single) <= ACCURACY_TOLERANCE, (seen[0]["test_acc"], single)
    assert single > 90  # both learned
    # the global batch must split evenly over the ranks, and the error says how
    assert (
        "batch_size 65 is the global batch of 2 processes and must be divisible by 2; use 64 or 66"
        in seen[0]["error"]
    )


def test_two_ranks_share_the_shadow_models(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    torchrun(str(WORKER), "shadows", str(tmp_path), cwd=tmp_path)
    seen = ranks(tmp_path)
    trained = [sorted(i for i, cached in s["seen"] if not cached) for s in seen]
    assert trained == [[0, 2], [1, 3]]  # each model trained once, by one rank
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 4
    assert not list((tmp_path / "cache").glob("*.tmp"))
    assert seen[0]["loaded"] == seen[1]["loaded"]
    data = dataclasses.replace(digits, train_x=digits.train_x[:600], train_y=digits.train_y[:600])
    # the same 4 models trained in one process: the same weights and the same LiRA scores
    # (with one torch thread, as each rank has: another thread count sums in another order)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = train_shadows(data, "cnn", SHADOW_RECIPE, n=4, cache_dir=tmp_path / "one",
                              progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert [state_hash(m) for m in alone.models] == seen[0]["loaded"]
    shared = train_shadows(data, "cnn", SHADOW_RECIPE, n=4, cache_dir=tmp_path / "cache",
                           progress=False)  # fmt: skip
    x, y = data.train_x, data.train_y
    target = alone.models[0]
    with torch.no_grad():
        scores = [
            lira_offline(
                scaled_logit(target(x), y),
                torch.stack([scaled_logit(m(x), y) for m in s.models]),
                s.members,
            )
            for s in (alone, shared)
        ]
    assert torch.equal(alone.members, shared.members)
    assert torch.equal(scores[0], scores[1])


GRID = """name: ranks
dataset: digits
model: shipped
ks: [2, 4, 6, 8, 10]
seeds: [0, 1]
retain_eval_size: 0
results: ranks_results.jsonl
report: RANKS.md
speed: false
methods:
  - method: neg_grad
    settings: {lr: 0.01, max_steps: 40, stop: budget}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_rank_grid_runs_every_cell_once_and_resumes_after_a_killed_rank(
    tmp_path: Path,
) -> None:
    grid_file = tmp_path / "ranks.yaml"
    grid_file.write_text(GRID)
    cells = {c.id for c in load_grid(grid_file).cells}
    results = tmp_path / "ranks_results.jsonl"
    # two ranks started as torchrun starts them, so that one can be killed mid-grid
    port = str(_free_port())
    bench = [sys.executable, "-m", "amnesiac", "bench", str(grid_file), "--no-progress"]
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    procs = [
        subprocess.Popen(
            bench,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(**env, RANK=str(r), LOCAL_RANK=str(r)),
        )
        for r in range(2)
    ]
    try:
        deadline = time.monotonic() + 90
        while not read_rows(results) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a rank ended before its first cell"
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)  # rank 1 dies mid-grid
    finally:
        procs[0].terminate()  # and the launcher stops the others, as torchrun does
        for p in procs:
            p.wait(timeout=30)
    before = [r.id for r in read_rows(results)]
    assert 0 < len(before) < len(cells), "the kill came too late to test resuming"
    assert len(set(before)) == len(before)
    torchrun("-m", "amnesiac", "bench", str(grid_file), "--no-progress", cwd=tmp_path)
    rows = read_rows(results)
    ids = [r.id for r in rows]
    assert sorted(ids) == sorted(cells)  # every cell exactly once
    assert ids[: len(before)] == before  # the first run's rows kept, none rerun
    assert all(r.ok for r in rows), [r.error for r in rows]
    rerun = rows[len(before) :]
    assert {r.ranks for r in rerun} == {2} and {r.value("rank") for r in rerun} == {0, 1}
    assert len({r.grid_started for r in rerun}) == 1  # one run, whatever rank wrote the row
    # the report says how many ranks ran
    assert main(["bench", str(grid_file), "--report"]) == 0
    assert "on 2 rank(s) of torchrun" in (tmp_path / "RANKS.md").read_text()
    # nothing is left to run
    assert main(["bench", str(grid_file), "--no-progress"]) == 0
    assert len(read_rows(results)) == len(cells)


def test_commands_that_run_in_one_process_refuse_torchrun(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["methods"]) == 2
    err = capsys.readouterr().err
    assert "error (rank 1): `amnesiac methods` runs in one process" in err


def test_pretrain_retrain_and_audit_commands_under_torchrun(tmp_path: Path) -> None:
    """The README's commands, 2 ranks each: rank 0 alone prints and writes."""
    original, retrained = tmp_path / "m.safetensors", tmp_path / "r.safetensors"
    digits = ["--dataset", "digits", "--epochs", "2", "--batch-size", "64", "--no-flip"]
    done = torchrun("-m", "amnesiac", "pretrain", *digits, "--arch", "cnn", "--out",
                    str(original), cwd=tmp_path)  # fmt: skip
    assert done.stdout.count("saved ") == 1 and "2 processes" in done.stdout
    meta = amnesiac.load_checkpoint(original).meta
    assert meta["processes"] == 2 and meta["recipe"]["batch_size"] == 64
    assert 0 < meta["test_acc"] <= 100
    forget = ["--forget", "random:8:0", "--no-progress"]
    done = torchrun("-m", "amnesiac", "unlearn", "--model", str(original), "--method", "retrain",
                    *digits, *forget, "--out", str(retrained), cwd=tmp_path)  # fmt: skip
    assert done.stdout.count("saved ") == 1
    assert amnesiac.load_checkpoint(retrained).meta["unlearned"]["method"] == "retrain"
    report = tmp_path / "audit.json"
    done = torchrun("-m", "amnesiac", "audit", "--model", str(retrained), "--original",
                    str(original), "--dataset", "digits", *forget, "--shadows", "2", "--cache",
                    str(tmp_path / "cache"), "--out", str(report), cwd=tmp_path)  # fmt: skip
    assert "shared out over 2 ranks" in done.stdout
    assert json.loads(report.read_text())["lira"]["shadow_models"] == 2
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_pretrain_recipe_sets_the_papers_cifar10_setup(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    argv = ["pretrain", "--dataset", "digits", "--recipe", "cifar10-resnet18", "--arch", "cnn",
            "--epochs", "1", "--precision", "fp32", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    meta = amnesiac.load_checkpoint(out).meta
    recipe = meta["recipe"]
    assert meta["arch"] == "cnn" and recipe["epochs"] == 1 and recipe["precision"] == "fp32"
    assert (recipe["lr"], recipe["momentum"], recipe["weight_decay"]) == (0.01, 0.9, 5e-4)
    assert (recipe["batch_size"], recipe["crop_padding"], recipe["warmup"]) == (128, 4, 0.0)
    assert PRETRAIN_SETUPS["cifar10-resnet18"].arch == "resnet18_maxpool"
    assert PRETRAIN_SETUPS["cifar10-resnet18"].recipe.precision == "bf16"
    assert main([*argv[:-2], "--device", "cuda:x", "--out", str(out)]) == 2


def test_unlearn_under_torchrun_runs_only_data_parallel_methods(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(distributed, "active", lambda: True)  # as in a group of 2
    argv = ["unlearn", "--dataset", "digits", "--forget", "random:4:0", "--method", "l2ul"]
    assert main(argv) == 2
    assert "method 'l2ul' runs in one process: start it without torchrun" in capsys.readouterr().err
