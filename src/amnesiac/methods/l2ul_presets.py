"""The named settings bundles of ``l2ul`` (``preset="paper"``, ``preset="surrogate"``)."""

from __future__ import annotations

from typing import Any

# Every setting but the seed, the objective and the batch sizes that only change speed, so that
# a change of l2ul's defaults never changes what the paper preset runs (a test holds it to that).
PAPER_PRESET: dict[str, Any] = {
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "batch_size": 32,
    "adv_batch_size": 256,
    "n_adv": 20,
    "pgd_eps": 2.0,
    "pgd_step": 0.1,
    "pgd_steps": 100,
    "target_rule": "paper",
    "adv_loss": "target",
    "importance_bn_mode": "train",
    "bn_mode": "train",
    "forget_loss": "neg_ce",
    "weighting": "batch",
    "margin": 0.0,
    "forget_reduction": "batch",
    "nearest_target": False,
    "spread_targets": False,
    "anchored_spread_targets": False,
    "project_forget": False,
    "heal_steps": 0,
    "heal_patience": 0,
    "heal_check_every": 10,
    "heal_min_gain": 0.0,
    "stop": "forgotten",
    "max_steps": 2000,
    "reg_weight": 1.0,
    "anchored_reg_weight": 1.0,
    "forget_weight": 1.0,
    "forget_scale_k": 0,
    "anchored_forget_scale_k": 0,
    "forget_escalate_steps": 0,
    "shrink_steps": 0,
    "clip_grad_norm": 0.0,
    # the official code's steps exactly, wherever they stay finite; where they go to NaN (which
    # the official code would hand back), the run is redone bounded and says so (rescued_from)
    "rescue_clip_grad_norm": 20.0,
    # none of amnesiac's additions
    "proxy_size": 0,
    "proxy_batch_size": 128,
    "anchored_near_fraction": 0.0,
    "heal_schedule": "constant",
    "anchored_heal_schedule": "constant",
    "anchored_heal_steps": 0,
    "anchored_heal_patience": 0,
    "anchored_heal_holdout": 0.0,
    "proxy_min_shift": 0.1,
    "proxy_max_shift": 0.15,
    "proxy_flip": True,
    "proxy_mix": True,
    "proxy_weight": 10.0,
    "proxy_loss": "kl",
    "anchored_lr": 1e-3,
    "anchored_augment_to": 0,
    "anchored_logit_weight": 0.0,
}


# For ``surrogate=`` anchors (real images cover every class, so more of them per step and a
# longer heal help; ``anchored_heal_steps`` was ``heal_steps`` when it was chosen): validation
# k=32, forget seeds 100 / 101, 0.78 / 0.42 points against 1.06 /
# 0.82 with the forget-only defaults (benchmarks/VALIDATION.md).
# The MAS penalty stays on in it (as when it was chosen, so its benchmark rows stay current); the
# defaults now turn it off under anchors (``anchored_reg_weight``), which measured better; so
# does the forget term's scale with k (``anchored_forget_scale_k``), the heal's decaying
# learning rate (``anchored_heal_schedule``), a doubled learning rate (``anchored_lr``) and a hold
# on the anchors' logits (``anchored_logit_weight``).
SURROGATE_PRESET: dict[str, Any] = {
    "proxy_batch_size": 256,
    "anchored_heal_steps": 400,
    "anchored_heal_patience": 0,
    "max_steps": 1500,
    "anchored_reg_weight": 1.0,
    "anchored_forget_scale_k": 64,
    "anchored_heal_schedule": "constant",
    "anchored_lr": 1e-3,
    "anchored_augment_to": 0,
    "anchored_logit_weight": 0.0,
}
