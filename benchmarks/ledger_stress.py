"""The ledger under more concurrent requests than its test uses (issue 27).

`python benchmarks/ledger_stress.py PROCESSES TRIALS`: each trial starts PROCESSES processes
that each prepare a request from the shipped digits model and write its model, then, released
together by a barrier, call `Ledger.record()`. Prints per trial: (requests recorded, entries in
the ledger, entries `verify` checked, whether every refused request was told the current model).
A sound ledger prints (1, 1, 1, True) every time.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import amnesiac
from test_ledger_concurrency import _request_and_record


def trial(processes: int) -> tuple[int, int, int, bool]:
    with tempfile.TemporaryDirectory() as folder:
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(processes), ctx.Queue()
        procs = [
            ctx.Process(target=_request_and_record, args=(folder, i, barrier, out))
            for i in range(processes)
        ]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=600) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        recorded = sum(r == "ok" for r in results.values())
        ledger = amnesiac.Ledger(Path(folder) / "ledger.jsonl")
        told = all("current model is now" in r for r in results.values() if r != "ok")
        return recorded, len(ledger.entries()), ledger.verify().entries, told


if __name__ == "__main__":
    processes, trials = int(sys.argv[1]), int(sys.argv[2])
    for t in range(trials):
        print(t, trial(processes), flush=True)
