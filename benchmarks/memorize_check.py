"""Does the memorizing benchmark model leak? LiRA of its members against the test set (issue 17).

Trains (or loads from the cache) the shadow models that ``fashion_mnist_memorize.yaml`` audits
with (same dataset, recipe, precision and count, so the grid reuses them), then scores 5,000
random members of the model's training set against the grid's D_test (test rows 5000-10000)
with offline LiRA, and the same for the loss-threshold attack. Writes
``benchmarks/memorize_check.json``.

Run: ``python benchmarks/memorize_check.py [GRID [OUT]]`` (defaults: the memorize grid, and
``memorize_check.json`` beside this file), so a candidate model can be checked with a grid of
its own before the benchmark adopts it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import amnesiac
from amnesiac.audit import lira_report, shadow_phi
from amnesiac.bench.grid import load_grid
from amnesiac.metrics.accuracy import predict_logits
from amnesiac.metrics.mia import auc

HERE = Path(__file__).resolve().parent
N_MEMBERS = 5000
#: lira_report's summary of a model (lira_summary's keys), without its per-example scores
SUMMARY_KEYS = ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "mean_score")
DEFAULT_GRID = HERE / "fashion_mnist_memorize.yaml"


def main(grid_path: Path, out_path: Path) -> None:
    grid = load_grid(grid_path)
    data = amnesiac.load_dataset(grid.dataset)
    ckpt = amnesiac.load_checkpoint(grid.path.parent / grid.model)
    recipe = {**ckpt.meta["recipe"], "precision": grid.settings.get("precision", "fp32")}
    t0 = time.perf_counter()
    shadows = amnesiac.train_shadows(
        data, str(ckpt.meta["arch"]), amnesiac.TrainRecipe(**recipe), n=grid.shadows
    )
    shadow_seconds = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    members = torch.randperm(len(data.train_y), generator=g)[:N_MEMBERS]
    start, stop = grid.test_rows or (0, len(data.test_y))
    mx, my = data.train_x[members], data.train_y[members]
    tx, ty = data.test_x[start:stop], data.test_y[start:stop]
    lm, lt = predict_logits(ckpt.model, mx), predict_logits(ckpt.model, tx)
    # the members in the place of D_f: the audit's own offline LiRA
    lira = lira_report(
        {"original": (lm, lt)},
        forget_y=my,
        test_y=ty,
        shadow_forget=shadow_phi(shadows, mx, my),
        shadow_test=shadow_phi(shadows, tx, ty),
        shadow_in=shadows.members[:, members],
    )["original"]
    loss_m = torch.nn.functional.cross_entropy(lm.float(), my, reduction="none")
    loss_t = torch.nn.functional.cross_entropy(lt.float(), ty, reduction="none")
    out = {
        "model": grid.model,
        "dataset": grid.dataset,
        "shadow_models": len(shadows.models),
        "shadow_seconds": round(shadow_seconds, 1),
        "members": N_MEMBERS,
        "test_rows": [start, stop],
        "lira": {key: lira[key] for key in SUMMARY_KEYS},
        # members should have the lower loss: negate so higher means "member"
        "loss_threshold_auc": auc((-loss_m).double().numpy(), (-loss_t).double().numpy()),
        "command": "python benchmarks/memorize_check.py"
        + ("" if grid_path == DEFAULT_GRID else f" {grid_path}"),
    }
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        Path(args[0]) if args else DEFAULT_GRID,
        Path(args[1]) if len(args) > 1 else HERE / "memorize_check.json",
    )
