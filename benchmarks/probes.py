"""Validation probes of l2ul that did not become settings: the evidence behind issue 4's notes.

Same validation split as ``benchmarks/tune.py`` (forget seeds 100-102, a seeded sample of 5,000
other retained training instances; the test split is never used). Each probe changes one thing
inside l2ul by wrapping its methods in this script, so the library carries no dead options.
Prints one JSON line per run.

    python benchmarks/probes.py trajectory K SEED STEPS   # drop and D_f every 10 steps
    python benchmarks/probes.py inversion K SEED          # + proxies inverted from the model
    python benchmarks/probes.py same_class_mix K SEED     # mixtures of same-class forget images
    python benchmarks/probes.py heal_schedule K SEED      # cosine lr decay over the heal steps
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tune import split  # benchmarks/tune.py, beside this script

import amnesiac
import amnesiac.methods.l2ul as l2ul_module
from amnesiac.methods.l2ul import L2UL
from amnesiac.metrics import accuracy, predict_logits
from amnesiac.ops.losses import other_max

torch.set_num_threads(1)


def invert(model: nn.Module, n: int, steps: int = 300, seed: int = 0) -> Tensor:
    """DeepInversion-style inputs: Adam on pixel logits toward a class, matching every
    BatchNorm layer's running mean and variance, with random jitter and flips."""
    model.eval()
    stats: list[Tensor] = []

    def hook(m: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        x = inp[0]
        mu, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
        stats.append((mu - m.running_mean).norm() + (var - m.running_var).norm())

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [b.register_forward_hook(hook) for b in bns]
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    z = torch.randn((n, 1, 28, 28), generator=g).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    try:
        for _ in range(steps):
            stats.clear()
            x = torch.sigmoid(z)
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
            xj = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            if torch.rand(1, generator=g).item() < 0.5:
                xj = xj.flip(3)
            tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
            tv = tv + (x[..., 1:] - x[..., :-1]).abs().mean()
            loss = F.cross_entropy(model(xj), y) + sum(stats) + 1e-3 * tv
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return torch.sigmoid(z).detach()


def same_class_mix(x: Tensor, y: Tensor, n: int, g: torch.Generator) -> Tensor:
    """Mixtures of two different forget images of the same class (any two when a class has
    one image)."""
    i = torch.randint(len(x), (n,), generator=g)
    j = torch.empty_like(i)
    for c in y.unique():
        members = (y == c).nonzero().flatten()
        rows = (y[i] == c).nonzero().flatten()
        if len(members) >= 2:
            pos = torch.searchsorted(members, i[rows])
            step = torch.randint(1, len(members), (len(rows),), generator=g)
            j[rows] = members[(pos + step) % len(members)]
        else:
            j[rows] = (i[rows] + torch.randint(1, len(x), (len(rows),), generator=g)) % len(x)
    lam = (torch.rand(n, generator=g) * 0.6 + 0.2)[:, None, None, None]
    return lam * x[i] + (1 - lam) * x[j]


def run(probe: str, k: int, seed: int, steps: int = 450) -> None:
    data = amnesiac.load_dataset("fashion-mnist")
    forget_idx, val_idx, _ = split(data.train_y, k, seed)
    forget = (data.train_x[forget_idx], data.train_y[forget_idx])
    val = (data.train_x[val_idx], data.train_y[val_idx])
    model = amnesiac.load_pretrained("fashion-mnist").model.eval()
    base = accuracy(model, *val)
    settings: dict[str, Any] = {}
    original_loss = L2UL.loss
    if probe == "trajectory":
        xf, yf = forget

        def loss(self: L2UL, m: nn.Module, d: Any, step: int) -> dict[str, Tensor]:
            if step % 10 == 1:
                out = predict_logits(m, xf)
                true = out.gather(1, yf[:, None]).squeeze(1)
                other = other_max(out, yf)
                row = {"step": step - 1, "val_drop": round(base - accuracy(m, *val), 2),
                       "forget_acc": accuracy(m, xf, yf),
                       "min_margin": round(float((other - true).min()), 2)}
                print(json.dumps(row), flush=True)
            return original_loss(self, m, d, step)

        L2UL.loss = loss  # type: ignore[method-assign]
        settings = {"stop": "budget", "max_steps": steps, "shrink_steps": 0}
    elif probe in ("inversion", "same_class_mix"):
        made = l2ul_module.forget_proxies
        extra = invert(model, 256) if probe == "inversion" else None

        def proxies(x: Tensor, n: int, **kw: Any) -> Tensor:
            if extra is not None:  # half of every proxy batch from the inverted inputs
                return torch.cat([made(x, n, **kw), extra.repeat(math.ceil(n / len(extra)), 1,
                                                                 1, 1)[:n]])
            half = made(x, n - n // 2, **{**kw, "mix": False})
            return torch.cat([half, same_class_mix(x, forget[1], n // 2, kw["generator"])])

        l2ul_module.forget_proxies = proxies  # type: ignore[assignment]
    elif probe == "heal_schedule":
        original_opt = L2UL.make_optimizer

        def make_optimizer(self: L2UL, m: nn.Module) -> torch.optim.Optimizer:
            self._probe_opt = original_opt(self, m)  # type: ignore[attr-defined]
            return self._probe_opt  # type: ignore[attr-defined]

        def loss(self: L2UL, m: nn.Module, d: Any, step: int) -> dict[str, Tensor]:
            first = self._first_forgotten
            if first is not None:  # cosine from lr to lr/10 over the heal steps
                frac = min(1.0, (step - 1 - first) / max(1, self.config.heal_steps))
                scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
                for group in self._probe_opt.param_groups:  # type: ignore[attr-defined]
                    group["lr"] = self.config.lr * scale
            return original_loss(self, m, d, step)

        L2UL.make_optimizer = make_optimizer  # type: ignore[method-assign]
        L2UL.loss = loss  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown probe {probe!r}; see the docstring")
    t0 = time.perf_counter()
    r = amnesiac.unlearn(model, forget=forget, method="l2ul", seed=seed, **settings)
    print(json.dumps({"probe": probe, "k": k, "seed": seed,
                      "forget_acc": accuracy(r.model, *forget),
                      "val_drop": round(base - accuracy(r.model, *val), 2), "steps": r.steps,
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *map(int, sys.argv[4:5]))
