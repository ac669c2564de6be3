"""The contract every unlearning method keeps, as checks a method's author can run.

``check_method`` runs a registered method (the eight shipped ones, or your own after
:func:`amnesiac.register`) on a model and a forget set, under the fast settings the method
declares (:attr:`amnesiac.Unlearner.fast_settings`), and raises :class:`ContractError` naming
the first rule it breaks:

1. it forgets: every forget instance meets the objective (methods whose
   :attr:`~amnesiac.Unlearner.forgets` is ``False``, e.g. ``retrain``, which forget only as far as
   the retained data implies, are exempt);
2. the caller's model is bitwise untouched: weights, buffers, gradients, the train/eval mode and
   ``requires_grad`` of every parameter, and the forward, pre-forward and backward hooks of
   every submodule;
3. the result is a new model, in eval mode, finite, with contiguous tensors (what safetensors
   needs);
4. rerunning from ``result.config`` gives bitwise the same weights;
5. every history record carries ``loss``, one per step.

Example:
    >>> import amnesiac
    >>> from amnesiac.testing import check_method
    >>> data = amnesiac.load_dataset("digits")
    >>> model = amnesiac.load_pretrained("digits").model
    >>> idx = amnesiac.parse_forget("random:4:0", data.train_y)
    >>> forget = (data.train_x[idx], data.train_y[idx])
    >>> check_method("neg_grad", model, forget).forgotten
    True
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from amnesiac.api import Data, evaluate, unlearn
from amnesiac.errors import AmnesiacError
from amnesiac.methods.base import UnlearnResult, get_method

__all__ = ["ContractError", "check_method", "model_snapshot", "snapshot_diff"]


class ContractError(AmnesiacError, AssertionError):
    """A method broke a rule of the contract (the message names which)."""


def model_snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything about ``model`` that unlearning must leave as it was, for ``==``-free
    comparison with :func:`_same`: tensors are cloned."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
        "hooks": [
            (
                tuple(m._forward_hooks),
                tuple(m._forward_pre_hooks),
                tuple(m._backward_hooks),
                tuple(m._backward_pre_hooks),
            )
            for m in model.modules()
        ],
    }


def snapshot_diff(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """What differs between two snapshots, or ``None``."""
    for key in ("training", "requires_grad", "hooks"):
        if a[key] != b[key]:
            return key.replace("_", " ")
    if a["state"].keys() != b["state"].keys():
        return "the state dict's keys"
    for k in a["state"]:
        if not torch.equal(a["state"][k], b["state"][k]):
            return f"tensor {k}"
    for x, y in zip(a["grads"], b["grads"], strict=True):
        if (x is None) != (y is None) or (x is not None and not torch.equal(x, y)):
            return "a parameter's gradient"
    return None


def check_method(
    method: str,
    model: nn.Module,
    forget: Data,
    *,
    retain: Data | None = None,
    surrogate: Tensor | None = None,
    **settings: Any,
) -> UnlearnResult:
    """Run ``method`` under its declared fast settings (``settings`` on top) and check the
    contract on the way; returns the first run's result.

    Raises:
        ContractError: The rule the method broke.
    """
    info = get_method(method)
    caller = copy.deepcopy(model)
    before = model_snapshot(caller)
    config = {**info.cls.fast_settings, **settings}
    result = unlearn(caller, forget, method=method, retain=retain, surrogate=surrogate, **config)
    if diff := snapshot_diff(before, model_snapshot(caller)):
        raise ContractError(f"{method}: the caller's model was changed ({diff})")
    out = result.model
    if out is caller or out.training:
        raise ContractError(f"{method}: the result must be a new model in eval mode")
    if not all(torch.isfinite(p).all() for p in out.parameters()):
        raise ContractError(f"{method}: the result has non-finite weights")
    if not all(t.is_contiguous() for t in out.state_dict().values()):
        raise ContractError(f"{method}: the result has non-contiguous tensors")
    if info.cls.forgets:
        acc = evaluate(out, forget=forget)["forget_acc"]
        if not result.forgotten or acc != 0.0:
            raise ContractError(
                f"{method}: under its fast_settings {config} it did not forget D_f "
                f"({acc:.1f}% still right after {result.steps} steps)"
            )
    if len(result.history) != result.steps or any("loss" not in h for h in result.history):
        raise ContractError(f"{method}: the history must hold one record with 'loss' per step")
    again = unlearn(
        model, forget, method=method, retain=retain, surrogate=surrogate, **result.config
    )
    a, b = out.state_dict(), again.model.state_dict()
    if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
        raise ContractError(f"{method}: rerunning from result.config gave other weights")
    return result
