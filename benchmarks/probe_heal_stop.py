"""When the anchored heal stops helping: a trajectory probe (issue 26) for the heal check.

Same validation split, model and anchors as ``tune_anchored.py`` (the forget-ready Fashion-MNIST
ResNet-20 and its 2,000 reserved images, forget seeds 100-102, 5,000 other trained rows; the
test split is never read). A seeded tenth of the anchors (HOLDOUT images) is held out of the run;
it trains on the rest with the defaults, and every 10 heal steps the probe records the held-out
anchors' divergence from the original model (mean KL of its softmax from the original's, and the
share of them whose top class changed), the validation drop, whether D_f is forgotten, and the
images trained so far. Stopping the heal at a check leaves exactly the model recorded there (but
for the shrink toward the original weights that follows every run), so a stop rule can be read off
the rows. It runs in float32 (``PROBE_PRECISION=bf16`` for a CPU with AMX).

At k=32 (seeds 100-102) the held-out divergence kept falling through the 100 heal steps (by 27%,
38% and 37%) and the validation drop with it (0.82 / 0.98 / 1.38 where D_f was first forgotten,
0.56 / 0.40 / 0.56 at the end); at k=128 (seeds 100-101) it rose, with D_f right again for most
of the heal, and the drop rose from 1.34 / 1.90 to 2.00 / 2.40. The check built on it
(``anchored_heal_patience``) did not beat the fixed heal (``tune_anchored.py`` round 12).

    python benchmarks/probe_heal_stop.py K SEED[,SEED...] [HOLDOUT]
        >> benchmarks/probe_heal_stop_results.jsonl
"""

from __future__ import annotations

import json
import os
import sys

import torch
from tune_anchored import _setup, forget_and_validation  # beside this script

import amnesiac
from amnesiac.bench.speed import ImageCounter
from amnesiac.methods.base import Unlearner

EVERY = 10
PRECISION = os.environ.get("PROBE_PRECISION", "fp32")


@torch.no_grad()
def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i : i + 1000]) for i in range(0, len(x), 1000)]).float()


def main() -> None:
    k, seeds = int(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")]
    holdout = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    data, model, anchors, trained = _setup(None)
    perm = torch.randperm(len(anchors), generator=torch.Generator().manual_seed(7))
    held, train_anchors = anchors[perm[:holdout]], anchors[perm[holdout:]]
    ref_held = _logits(model.eval(), held)
    step_of = Unlearner._step
    for seed in seeds:
        f, v = forget_and_validation(data, trained, k, seed)
        before = amnesiac.evaluate(model, forget=f, test=v)["test_acc"]
        trace: list[dict] = []

        def traced(self, work, data_, opt, step, run, callback, trace=trace, v=v, before=before):
            stats = step_of(self, work, data_, opt, step, run, callback)
            first = self._first_forgotten
            # is_done (after this) sets _first_forgotten at the first forgotten step: heal 0
            healed = step - first if first is not None else (0 if stats["forgotten"] == 1 else -1)
            if healed >= 0 and healed % EVERY == 0:
                out = _logits(work, held)
                kl = torch.nn.functional.kl_div(
                    out.log_softmax(1), ref_held.log_softmax(1), log_target=True,
                    reduction="batchmean",
                )  # fmt: skip
                flips = (out.argmax(1) != ref_held.argmax(1)).float().mean()
                acc = (_logits(work, v[0]).argmax(1) == v[1]).float().mean() * 100
                trace.append({
                    "healed": healed, "kl": float(kl), "flips": float(flips) * 100,
                    "val_drop": before - float(acc), "forgotten": stats["forgotten"] == 1,
                    "trained": seen.trained,
                })  # fmt: skip
            return stats

        Unlearner._step = traced  # type: ignore[method-assign]
        with ImageCounter(type(model)) as seen:
            result = amnesiac.unlearn(
                model, forget=f, surrogate=train_anchors, precision=PRECISION, seed=0
            )
        Unlearner._step = step_of  # type: ignore[method-assign]
        after = amnesiac.evaluate(result.model, forget=f, test=v)
        row = {
            "k": k, "seed": seed, "holdout": holdout, "steps": result.steps,
            "val_drop": before - after["test_acc"], "forget_acc": after["forget_acc"],
            "trained": seen.trained, "trace": trace,
        }  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
