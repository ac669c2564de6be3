"""Choose l2ul's default settings on a validation split carved from the training data.

Never looks at the test split. For each candidate: forget K random training instances
(seeds disjoint from the benchmark's 0-2), then measure the forget-set accuracy and the
accuracy on a fixed, seeded sample of 5,000 *other* retained training instances (the
validation split). Run: python benchmarks/tune.py [K] [SEED ...] > tune.jsonl
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

import amnesiac

CANDIDATES: dict[str, dict] = {
    "paper": {"preset": "paper"},
    "bn_eval": {"preset": "paper", "bn_mode": "eval"},
    "margin": {"preset": "paper", "forget_loss": "margin", "margin": 1.0},
    "margin+bn_eval": {"preset": "paper", "forget_loss": "margin", "margin": 1.0, "bn_mode": "eval"},
    "runner_up+bn_eval": {"preset": "paper", "forget_loss": "runner_up", "bn_mode": "eval"},
    "margin+bn_eval+lr1e-2": {"preset": "paper", "forget_loss": "margin", "margin": 1.0,
                              "bn_mode": "eval", "lr": 1e-2},
    "margin+bn_eval+distill": {"preset": "paper", "forget_loss": "margin", "margin": 1.0,
                               "bn_mode": "eval", "adv_loss": "distill"},
    "margin+bn_eval+distill+heal": {"preset": "paper", "forget_loss": "margin", "margin": 1.0,
                                    "bn_mode": "eval", "adv_loss": "distill", "heal_steps": 30},
}


def main() -> None:
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    seeds = [int(s) for s in sys.argv[2:]] or [100]
    only = [n for n in os.environ.get("TUNE_ONLY", "").split(",") if n]
    data = amnesiac.load_dataset("fashion-mnist")
    model = amnesiac.load_pretrained("fashion-mnist").model
    for seed in seeds:
        forget = amnesiac.parse_forget(f"random:{k}:{seed}", data.train_y)
        retain = amnesiac.retain_indices(len(data.train_y), forget)
        g = torch.Generator().manual_seed(1000 + seed)
        val = retain[torch.randperm(len(retain), generator=g)[:5000]]
        f = (data.train_x[forget], data.train_y[forget])
        v = (data.train_x[val], data.train_y[val])
        base = amnesiac.evaluate(model, forget=f, retain=v)
        for name, settings in CANDIDATES.items():
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            r = amnesiac.unlearn(model, forget=f, method="l2ul", seed=seed, **settings)
            m = amnesiac.evaluate(r.model, forget=f, retain=v)
            row = {"name": name, "k": k, "seed": seed, "forget_acc": m["forget_acc"],
                   "val_acc": m["retain_acc"], "val_drop": base["retain_acc"] - m["retain_acc"],
                   "steps": r.steps, "stopped_by": r.stopped_by,
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
