"""How close two models' outputs are (e.g. an unlearned model and one retrained without D_f)."""

from __future__ import annotations

import math

from torch import Tensor

from amnesiac.errors import InvalidSettingsError


def output_distance(logits_a: Tensor, logits_b: Tensor) -> dict[str, float]:
    """Agreement and divergences between two models' outputs on the same inputs.

    Returns:
        ``agreement``: percent of inputs where both predict the same class;
        ``kl``: mean ``KL(p_a || p_b)`` in nats; ``js``: mean Jensen-Shannon divergence in nats
        (symmetric, at most ``ln 2``). ``nan`` for empty inputs.

    Shape:
        ``logits_a``, ``logits_b``: ``(N, C)``.
    """
    if logits_a.shape != logits_b.shape:
        raise InvalidSettingsError(
            f"logit shapes differ: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}"
        )
    if len(logits_a) == 0:
        return {"agreement": math.nan, "kl": math.nan, "js": math.nan}
    la = logits_a.double().log_softmax(1)
    lb = logits_b.double().log_softmax(1)
    pa, pb = la.exp(), lb.exp()
    kl = (pa * (la - lb)).sum(1)
    lm = ((pa + pb) / 2).clamp_min(1e-300).log()
    js = 0.5 * (pa * (la - lm)).sum(1) + 0.5 * (pb * (lb - lm)).sum(1)
    agree = (la.argmax(1) == lb.argmax(1)).double().mean() * 100.0
    return {"agreement": float(agree), "kl": float(kl.mean()), "js": float(js.clamp_min(0).mean())}
