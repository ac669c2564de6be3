"""``l2ul_adv``: L2UL with the adversarial-example regularizer alone (the paper's Case 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from amnesiac.methods.base import register
from amnesiac.methods.l2ul import L2UL, PAPER_PRESET, L2ULConfig


@dataclass(frozen=True, kw_only=True)
class L2ULAdvConfig(L2ULConfig):
    """:class:`L2ULConfig` with the adversarial examples as the only regularizer: 20 per forget
    instance (20-step L2 PGD, radius 2, uniform targets), no MAS penalty, no proxies. Unlike
    ``l2ul``'s, the forget term is not scaled with k (batch 32, 600 steps): that scaling was
    chosen with the proxies on."""

    reg_weight: float = 0.0
    n_adv: int = 20
    proxy_size: int = 0
    forget_scale_k: int = 0
    batch_size: int = 32
    max_steps: int = 600


@register
class AdversarialRegularization(L2UL):
    """L2UL's adversarial examples of the forget set as the only regularizer.

    Equals ``l2ul`` with ``reg_weight=0, n_adv=20, proxy_size=0, forget_scale_k=0,
    batch_size=32, max_steps=600`` (a test holds it to that).
    """

    name = "l2ul_adv"
    fast_settings: ClassVar[dict[str, Any]] = {
        "max_steps": 300,
        "heal_steps": 0,
        "n_adv": 2,
        "pgd_steps": 3,
    }
    accepts = ()  # an ablation with one regularizer: no anchors
    config_cls = L2ULAdvConfig
    summary = "forget objective + adversarial examples of the forget set (paper's Case 2)"
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {**PAPER_PRESET, "reg_weight": 0.0}}
