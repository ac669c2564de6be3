"""Validation probes of l2ul that did not become settings: the evidence behind issue 4's notes.

Same validation split as ``benchmarks/tune.py`` (forget seeds 100-102, a seeded sample of 5,000
other retained training instances; the test split is never used). Each probe changes one thing
inside l2ul by wrapping its methods in this script, so the library carries no dead options.
Prints one JSON line per run.

    python benchmarks/probes.py trajectory K SEED STEPS   # drop and D_f every 10 steps
    python benchmarks/probes.py inversion K SEED          # + proxies inverted from the model
    python benchmarks/probes.py same_class_mix K SEED     # mixtures of same-class forget images
    python benchmarks/probes.py heal_schedule K SEED      # cosine lr decay over the heal steps
    python benchmarks/probes.py select K SEED STEPS      # data-free signals to pick the end step

``select`` (issue 15, lever 5: "ending well") runs l2ul under bf16 for STEPS steps and records,
every 5 steps: the validation drop (2,000 instances), the smallest forget margin, and three
signals that need no data: KL divergence and argmax agreement with the original model on 1,024
held-out proxies (made like l2ul's with another generator), and the weight distance from the
original. ``--summary`` on its rows prints, per run, the rank correlation of each signal with
the drop over the steps where D_f is forgotten and the drop at the step each signal would pick.
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
from amnesiac.ops.proxy import forget_proxies

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
                row = {
                    "step": step - 1,
                    "val_drop": round(base - accuracy(m, *val), 2),
                    "forget_acc": accuracy(m, xf, yf),
                    "min_margin": round(float((other - true).min()), 2),
                }
                print(json.dumps(row), flush=True)
            return original_loss(self, m, d, step)

        L2UL.loss = loss  # type: ignore[method-assign]
        settings = {"stop": "budget", "max_steps": steps, "shrink_steps": 0}
    elif probe in ("inversion", "same_class_mix"):
        made = l2ul_module.forget_proxies
        extra = invert(model, 256) if probe == "inversion" else None

        def proxies(x: Tensor, n: int, **kw: Any) -> Tensor:
            if extra is not None:  # half of every proxy batch from the inverted inputs
                return torch.cat(
                    [made(x, n, **kw), extra.repeat(math.ceil(n / len(extra)), 1, 1, 1)[:n]]
                )
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
    elif probe == "select":
        xf, yf = forget
        xv, yv = val[0][:2000], val[1][:2000]
        base = accuracy(model, xv, yv)
        hold = forget_proxies(
            xf, 1024, min_shift=3, max_shift=4, generator=torch.Generator().manual_seed(999)
        )
        ref = predict_logits(model, hold)
        theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}

        def loss(self: L2UL, m: nn.Module, d: Any, step: int) -> dict[str, Tensor]:
            if step % 5 == 1:
                out, ph = predict_logits(m, xf), predict_logits(m, hold)
                true = out.gather(1, yf[:, None]).squeeze(1)
                kl = F.kl_div(
                    ph.log_softmax(1), ref.log_softmax(1), log_target=True, reduction="batchmean"
                )
                dist = sum(((p.detach() - theta0[n]) ** 2).sum() for n, p in m.named_parameters())
                row = {
                    "k": k,
                    "seed": seed,
                    "step": step - 1,
                    "val_drop": round(base - accuracy(m, xv, yv), 2),
                    "min_margin": round(float((other_max(out, yf) - true).min()), 3),
                    "proxy_kl": round(float(kl), 4),
                    "proxy_agree": round(
                        float((ph.argmax(1) == ref.argmax(1)).float().mean() * 100), 2
                    ),
                    "dist": round(float(dist) ** 0.5, 4),
                }
                print(json.dumps(row), flush=True)
            return original_loss(self, m, d, step)

        L2UL.loss = loss  # type: ignore[method-assign]
        settings = {"stop": "budget", "max_steps": steps, "shrink_steps": 0, "precision": "bf16"}
    else:
        raise SystemExit(f"unknown probe {probe!r}; see the docstring")
    t0 = time.perf_counter()
    r = amnesiac.unlearn(model, forget=forget, method="l2ul", seed=seed, **settings)
    print(
        json.dumps(
            {
                "probe": probe,
                "k": k,
                "seed": seed,
                "forget_acc": accuracy(r.model, *forget),
                "val_drop": round(base - accuracy(r.model, *val), 2),
                "steps": r.steps,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        ),
        flush=True,
    )


def summary(path: str) -> None:
    """Per (k, seed) of ``select`` rows: each signal's rank correlation with the drop over the
    forgotten steps, and the drop at the step it picks."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if '"min_margin"' in line]
    for key in sorted({(r["k"], r["seed"]) for r in rows if "k" in r}):
        done = [
            r
            for r in rows
            if (r.get("k"), r.get("seed")) == key and r["min_margin"] > 0 and r["step"] > 0
        ]
        drops = torch.tensor([r["val_drop"] for r in done])
        out: dict[str, Any] = {
            "k": key[0],
            "seed": key[1],
            "forgotten_steps": len(done),
            "mean_drop": round(float(drops.mean()), 2),
        }
        for signal, best in (("proxy_kl", min), ("proxy_agree", max), ("dist", min)):
            values = torch.tensor([r[signal] for r in done])
            ranks = torch.stack([values.argsort().argsort(), drops.argsort().argsort()]).float()
            out[f"{signal}_spearman"] = round(float(torch.corrcoef(ranks)[0, 1]), 2)
            out[f"{signal}_picks"] = best(done, key=lambda r, s=signal: r[s])["val_drop"]
        print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        summary(sys.argv[2])
        raise SystemExit
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *map(int, sys.argv[4:5]))
