"""Where on the line from the original weights to the unlearned ones an anchored run should end:
a probe (issue 26) of the shrink toward the original weights that ends every run.

Same validation split, model and anchors as ``tune_anchored.py`` (the forget-ready Fashion-MNIST
ResNet-20 and its 2,000 reserved images, forget seeds 100-102, 5,000 other trained rows; the
test split is never read). One run with the defaults but ``shrink_steps=0`` gives the unlearned
weights θ; the probe then evaluates ``θ0 + a (θ - θ0)`` for ``a`` from 1 down by 0.05 to the
first fraction at which D_f is no longer all misclassified, recording at each the validation
drop and the anchors' divergence from the original model (mean KL of the softmax, on all 2,000
anchors the run trained on). The row marked ``default`` is the fraction the default shrink
(10 bisection steps) picks. It runs in float32 (``PROBE_PRECISION=bf16`` for a CPU with AMX).

At k=32 (seeds 100-102; ``probe_shrink_results.jsonl``) the drop fell monotonically toward the
original weights, as did the anchors' divergence: 0.70 / 0.34 / 0.76 at ``a=1``, 0.58 / 0.22 /
0.68 at the default's 0.94 / 0.86 / 0.91, and the next fraction down (0.90 / 0.85 / 0.90) left
3-6% of D_f right. So the shrink helps under anchors too and stops where it must. Shrinking each
module on its own after it (bisection per module, input to output or back; seeds 100-101; a
one-off, not kept) reverted several modules fully, and the drop hardly moved: 0.58 both ways
against 0.58, 0.22 and 0.16 against 0.22.

    python benchmarks/probe_shrink.py K SEED[,SEED...] >> benchmarks/probe_shrink_results.jsonl
"""

from __future__ import annotations

import copy
import json
import os
import sys

import torch
from tune_anchored import _setup, forget_and_validation  # beside this script

import amnesiac
from amnesiac.metrics.accuracy import predict_logits
from amnesiac.ops.losses import distill_kl
from amnesiac.ops.shrink import interpolated_state, shrink_update

PRECISION = os.environ.get("PROBE_PRECISION", "fp32")
STEP = 0.05


def probe(k: int, seed: int) -> None:
    data, model, anchors, trained = _setup(None)
    f, v = forget_and_validation(data, trained, k, seed)
    before = amnesiac.evaluate(model, test=v)["test_acc"]
    ref = predict_logits(model, anchors)
    result = amnesiac.unlearn(
        model, forget=f, surrogate=anchors, precision=PRECISION, seed=0, shrink_steps=0
    )

    def forgotten(m: torch.nn.Module) -> bool:
        return amnesiac.evaluate(m, forget=f)["forget_acc"] == 0.0

    _, default_a = shrink_update(model, result.model, forgotten, steps=10)
    fractions = sorted({round(1.0 - i * STEP, 4) for i in range(int(1 / STEP))} | {default_a})
    s0, s1, m = model.state_dict(), result.model.state_dict(), copy.deepcopy(result.model)
    for a in reversed(fractions):
        m.load_state_dict(interpolated_state(s0, s1, a))
        metrics = amnesiac.evaluate(m, forget=f, test=v)
        row = {
            "k": k, "seed": seed, "a": a, "default": a == default_a,
            "forget_acc": metrics["forget_acc"], "val_drop": before - metrics["test_acc"],
            "anchor_kl": float(distill_kl(predict_logits(m, anchors), ref)),
            "steps": result.steps, "precision": PRECISION,
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        if metrics["forget_acc"] > 0 and a < default_a:
            break


if __name__ == "__main__":
    for s in sys.argv[2].split(","):
        probe(int(sys.argv[1]), int(s))
