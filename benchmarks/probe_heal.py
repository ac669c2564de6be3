"""The anchored heal's learning rate, probed before it became a setting (issue 26).

Same validation split, model and anchors as ``tune_anchored.py`` (the forget-ready Fashion-MNIST
ResNet-20 and its 2,000 reserved images, forget seeds 100-102, 5,000 other trained rows; the
test split is never read). It wraps l2ul (as ``probes.py`` does) so that, once D_f is first
forgotten, each heal step runs at ``lr * MULT``, times a half cosine from 1 to 0 over the HEAL
steps if COSINE is 1 (the library's own schedule held constant). The rows were recorded before
the per-step check ran at bf16. What it found became ``anchored_heal_schedule="cosine"`` and
``anchored_heal_steps=100``.

    python benchmarks/probe_heal.py K SEED[,SEED...] NAME MULT HEAL COSINE ['{"lr": 0.002}']
        >> benchmarks/probe_heal_results.jsonl

Rows: ``hcos+heal150`` (MULT 1, HEAL 150, COSINE 1), ``hcos+heal100``, ``hlr2cos+heal100``
(MULT 2), ``hlr3cos+heal50``, ``hlr3+heal50`` (constant 3x), ``lr2e-3+hcos150`` (lr 2e-3
throughout); the defaults of the day are the ``defaults`` rows of tune_anchored_results.jsonl.
"""

from __future__ import annotations

import json
import math
import sys

from tune_anchored import _setup, forget_and_validation, measure  # beside this script

import amnesiac
from amnesiac.methods.base import Unlearner
from amnesiac.methods.l2ul import L2UL


def main() -> None:
    k, seeds, name = int(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")], sys.argv[3]
    mult, heal, cosine = float(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
    extra = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
    state: dict = {}
    make_optimizer, is_done = Unlearner.make_optimizer, L2UL.is_done

    def wrapped_optimizer(self, model):
        state["opt"] = opt = make_optimizer(self, model)
        state["lr0"] = opt.param_groups[0]["lr"]
        return opt

    def wrapped_is_done(self, forgotten, step):
        done = is_done(self, forgotten, step)
        if self._first_forgotten is not None and "opt" in state:
            healed = min(step - self._first_forgotten, heal)
            f = mult * (0.5 * (1 + math.cos(math.pi * healed / max(heal, 1))) if cosine else 1.0)
            for g in state["opt"].param_groups:
                g["lr"] = state["lr0"] * f
        return done

    Unlearner.make_optimizer, L2UL.is_done = wrapped_optimizer, wrapped_is_done
    heal_settings = {"anchored_heal_steps": heal, "anchored_heal_schedule": "constant"}
    data, model, anchors, trained = _setup(None)
    for seed in seeds:
        f, v = forget_and_validation(data, trained, k, seed)
        before = amnesiac.evaluate(model, forget=f, test=v)
        row = measure(model, f, v, before, anchors, **heal_settings, **extra)
        row = {"name": name, "k": k, "seed": seed, **row}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
