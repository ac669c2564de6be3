"""Check l2ul's defaults beyond the model they were tuned on: the plain CNNs (with and without
BatchNorm) on scikit-learn's digits, on a validation split carved from the digits training set.

    python benchmarks/tune_digits.py ARCH K SEED ... >> benchmarks/tune_digits_results.jsonl

ARCH is ``plaincnn``, ``plaincnn_nobn`` or ``resnet20`` (the shipped model); the models are the
benchmark's (``benchmarks/models``). Each candidate is a set of l2ul settings on top of the
defaults (``TUNE_ONLY`` picks some); the validation split is 300 retained training instances
(seeded); the test split is never used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tune import measure, split  # benchmarks/tune.py, beside this script

import amnesiac

HERE = Path(__file__).parent
NO_ESC = {"forget_escalate_steps": 0}  # the defaults before forget_escalate_steps existed
# no hold on the anchors' logits (anchored_logit_weight, added after these rows but A+kl10+mse1)
L0 = {"anchored_logit_weight": 0.0}
MSE_PB64 = {"surrogate": "test:0:150", "proxy_loss": "logit_mse", "proxy_batch_size": 64, **L0}
CANDIDATES: dict[str, dict] = {
    "L": {},
    "L-esc": NO_ESC,
    "L-esc+clip0": {**NO_ESC, "clip_grad_norm": 0.0},
    "L-esc+shift0.2-0.3": {**NO_ESC, "proxy_min_shift": 0.2, "proxy_max_shift": 0.3},
    "L-esc+fsk16": {**NO_ESC, "forget_scale_k": 16},
    "L-esc+steps2000": {**NO_ESC, "max_steps": 2000},
    # session 9 (issue 15, levers 3 and 4): nearest-boundary targets, A-GEM projected steps
    "L+nearest": {"nearest_target": True},
    "L+project": {"project_forget": True},
    "L+nearest+project": {"nearest_target": True, "project_forget": True},
    # issue 26: the defaults with anchors, the first 150 digits test images (unlabeled, never
    # trained on; nothing is measured on the test split), MAS off (the default under anchors)
    # and on
    "A": {"surrogate": "test:0:150"},
    "A+mas": {"surrogate": "test:0:150", "anchored_reg_weight": 1.0},
    # the anchored heal of 100 steps at a cosine-decayed rate (the defaults since; the earlier
    # "A" rows ran before it) against the 150 constant-rate steps it replaced
    "A+cos100": {"surrogate": "test:0:150"},
    "A+const150": {
        "surrogate": "test:0:150",
        "anchored_heal_steps": 150,
        "anchored_heal_schedule": "constant",
    },
    # anchored_lr=2e-3 (the default since; "A+cos100" rows ran at 1e-3), and the 150 anchors
    # grown to 2,000 images by shifted/flipped/mixed copies (anchored_augment_to)
    "A+lr2e-3": {"surrogate": "test:0:150"},
    "A+augto2000": {"surrogate": "test:0:150", "anchored_augment_to": 2000, **L0},
    # the anchors held by their logits (mean squared error, weight 3) instead of the KL
    # divergence of their softmax (weight 10): tune_anchored.py round 13. Plain CNN (bf16 on an
    # AVX2-only CPU, so slow): 0.44 against 0.78 for A+augto2000 at k=32, 7.22 against 9.44 at
    # k=128. A+mse3+pb64 (the Fashion-MNIST pick) ran here next, on all three models.
    "A+mse3": {"surrogate": "test:0:150", "proxy_loss": "logit_mse", "proxy_weight": 3.0, **L0},
    "A+mse3+pb64": {
        "surrogate": "test:0:150",
        "proxy_loss": "logit_mse",
        "proxy_weight": 3.0,
        "proxy_batch_size": 64,
        **L0,
    },
    # the logit hold's weight is in squared logits, whose scale is the model's: on the CNN
    # without BatchNorm (logit variance across classes 37 on its anchors, 19 for the
    # Fashion-MNIST ResNet-20) A+mse3+pb64 lost more than the KL hold; lighter and heavier
    "A+mse1.5+pb64": {**MSE_PB64, "proxy_weight": 1.5},
    "A+mse1+pb64": {**MSE_PB64, "proxy_weight": 1.0},
    "A+mse6+pb64": {**MSE_PB64, "proxy_weight": 6.0},
    # the logits held beside the KL term (anchored_logit_weight=1, the default since; tune_anchored
    # round 14): first run through a patched copy computing the same loss
    "A+kl10+mse1": {"surrogate": "test:0:150"},
}


def main() -> None:
    arch, k = sys.argv[1], int(sys.argv[2])
    seeds = [int(s) for s in sys.argv[3:]] or [100]
    only = [n for n in os.environ.get("TUNE_ONLY", "").split(",") if n]
    data = amnesiac.load_dataset("digits")
    if arch == "resnet20":
        model = amnesiac.load_pretrained("digits").model
    else:
        model = amnesiac.load_checkpoint(HERE / "models" / f"digits-{arch}.safetensors").model
    for seed in seeds:
        forget, val, _ = split(data.train_y, k, seed, n_val=300)
        f = (data.train_x[forget], data.train_y[forget])
        v = (data.train_x[val], data.train_y[val])
        base = amnesiac.evaluate(model, forget=f, retain=v)
        for name, settings in CANDIDATES.items():
            if only and name not in only:
                continue
            if "surrogate" in settings:  # "test:START:STOP": those digits test images
                start, stop = (int(v) for v in settings["surrogate"].split(":")[1:])
                settings = {**settings, "surrogate": data.test_x[start:stop]}
            measure(
                model,
                f,
                v,
                base["retain_acc"],
                {"arch": arch, "name": name, "k": k, "seed": seed},
                seed=seed,
                precision="bf16",
                **settings,
            )


if __name__ == "__main__":
    main()
