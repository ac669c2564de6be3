"""``l2ul_imp``: L2UL with the MAS weight-importance regularizer alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from amnesiac.methods.base import register
from amnesiac.methods.l2ul import L2UL, PAPER_PRESET, L2ULConfig


@dataclass(frozen=True, kw_only=True)
class L2ULImpConfig(L2ULConfig):
    """:class:`L2ULConfig` with the MAS penalty as the only regularizer (no adversarial examples,
    no proxies). Unlike ``l2ul``'s, the forget term is not scaled with k (batch 32, 600 steps):
    that scaling was chosen with the proxies on."""

    n_adv: int = 0
    proxy_size: int = 0
    forget_scale_k: int = 0
    batch_size: int = 32
    max_steps: int = 600


@register
class ImportanceRegularization(L2UL):
    """L2UL's MAS weight-importance penalty as the only regularizer.

    Equals ``l2ul`` with ``proxy_size=0, forget_scale_k=0, batch_size=32, max_steps=600`` (a
    test holds it to that).
    """

    name = "l2ul_imp"
    fast_settings: ClassVar[dict[str, Any]] = {"max_steps": 300, "heal_steps": 0}
    accepts = ()  # an ablation with one regularizer: no anchors
    config_cls = L2ULImpConfig
    summary = "forget objective + MAS weight importance computed on the forget set"
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {**PAPER_PRESET, "n_adv": 0}}
