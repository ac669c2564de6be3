"""Parameter importance (MAS) and the weighted quadratic penalty built on it.

Memory Aware Synapses (Aljundi et al., ECCV 2018) scores each parameter by how much the size of the
model's output changes when the parameter moves. L2UL (Cha et al., AAAI 2024) computes these
scores on the instances to forget, normalizes them per tensor to [0, 1] and holds the
*unimportant* parameters in place with the penalty ½ Σ (1 − Ω̂)(θ − θ₀)².

Example:
    >>> import torch
    >>> from torch import nn
    >>> from amnesiac.ops import importance_penalty, mas_importance, normalize_importance
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    >>> x_forget = torch.rand(16, 1, 8, 8)
    >>> omega = normalize_importance(mas_importance(model, x_forget))
    >>> weights = {name: 1 - value for name, value in omega.items()}
    >>> reference = {name: p.detach().clone() for name, p in model.named_parameters()}
    >>> float(importance_penalty(model, reference, weights))
    0.0
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from amnesiac.errors import InvalidSettingsError

__all__ = ["importance_penalty", "mas_importance", "normalize_importance"]

BnMode = Literal["eval", "train"]
_BN_MODES: tuple[str, ...] = ("eval", "train")


def mas_importance(
    model: nn.Module,
    x: Tensor,
    *,
    batch_size: int = 32,
    bn_mode: BnMode = "eval",
    squared: bool = False,
    per_sample: bool | None = None,
) -> dict[str, Tensor]:
    """Return the MAS importance Ω of every trainable parameter of ``model`` on inputs ``x``.

    With f(x) the logits, the per-sample output size is s(x) = ‖f(x)‖₂ (the official L2UL code;
    its comment says "squared" but the code is not), or ‖f(x)‖₂² with ``squared=True`` (the MAS
    paper). Two estimators:

    * Per sample (``per_sample=True``; the MAS paper's definition):
      Ω = (1/N) Σᵢ |∂s(xᵢ)/∂θ|. ``batch_size`` only chunks the computation (per-sample gradients
      via ``torch.func.vmap``), so the result does not depend on it.
    * Per batch (``per_sample=False``; the official code, itself FACIL's ``mas.py``): for each
      batch B of ``batch_size`` samples, Ω += |∂/∂θ mean_{x∈B} s(x)|·|B|, then Ω /= N. Absolute
      values are taken of batch gradients, so the result depends on ``batch_size``. Two official
      bugs are fixed: gradients do not accumulate across batches (the official code zeroes the
      gradients of a different model), and the sum is divided by the number of samples N rather
      than by (number of batches)·``batch_size`` (a constant factor, which per-tensor
      normalization removes anyway).

    ``per_sample=None`` (default) picks the per-sample estimator with ``bn_mode="eval"`` and the
    per-batch one with ``bn_mode="train"``.

    BatchNorm: ``bn_mode="train"`` normalizes with each batch's statistics, as the official code
    does (its copy of the model is in ``train()`` mode); ``"eval"`` (our default) uses the running
    statistics, so every sample is scored on its own. Only batch-norm layers change mode; dropout
    and the rest stay in eval mode so the estimate is deterministic.

    Runs in float32 even under :func:`torch.autocast`. The caller's model is not changed: the work
    is done on a ``copy.deepcopy``, so its mode, its BatchNorm running statistics and its
    parameters' ``.grad`` stay as they were.

    Args:
        model: Classifier returning logits of shape (B, C).
        x: Inputs to score the parameters on (L2UL: the instances to forget). Moved batch by batch
            to the model's device; their dtype must match the model's.
        batch_size: Samples per batch; ≥ 1.
        bn_mode: Mode of the batch-norm layers while scoring: ``"eval"`` or ``"train"``.
        squared: Use the squared norm of the logits (the MAS paper) instead of the norm (L2UL).
        per_sample: Estimator, see above; None picks it from ``bn_mode``. ``True`` with
            ``bn_mode="train"`` is refused: per-sample gradients are undefined when a sample's
            output depends on its batch.

    Returns:
        Ω for each parameter with ``requires_grad``, keyed by its ``named_parameters()`` name, with
        the parameter's shape, dtype and device; detached and ≥ 0. A parameter that does not
        affect the output gets zeros.

    Raises:
        InvalidSettingsError: If ``x`` is empty or not batched, ``batch_size`` < 1, ``bn_mode``
            is unknown, or ``per_sample=True`` is combined with ``bn_mode="train"``.

    Shape:
        - x: (N, *), e.g. (N, C, H, W) in [0, 1]; N ≥ 1.
        - output: {name: tensor of the parameter's shape}.
    """
    _check_mas(x, batch_size=batch_size, bn_mode=bn_mode, per_sample=per_sample)
    use_per_sample = bn_mode == "eval" if per_sample is None else per_sample

    scorer = copy.deepcopy(model)
    scorer.eval()
    if bn_mode == "train":
        for module in scorer.modules():
            if isinstance(module, _BatchNorm):
                module.train()

    trainable = {name: p for name, p in scorer.named_parameters() if p.requires_grad}
    if not trainable:
        raise InvalidSettingsError(
            "the model has no parameters with requires_grad=True, so MAS importance is empty; "
            "pass the model whose parameters will be trained"
        )
    omega = {name: torch.zeros_like(p) for name, p in trainable.items()}
    device = next(iter(trainable.values())).device if trainable else x.device

    # float32 whatever the caller's autocast: the estimate is cheap (it reads only x), and
    # per-sample gradients (torch.func) do not run under autocast
    with torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for lo in range(0, x.shape[0], batch_size):
            batch = x[lo : lo + batch_size].detach().to(device)
            if use_per_sample:
                grads = _per_sample_abs_grads(scorer, trainable, batch, squared=squared)
            else:
                grads = _batch_abs_grads(scorer, trainable, batch, squared=squared)
            for name, value in grads.items():
                omega[name] += value
    return {name: (value / x.shape[0]).detach() for name, value in omega.items()}


def normalize_importance(importance: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rescale each tensor of ``importance`` to [0, 1] by its own minimum and maximum.

    Ω̂ = (Ω − min Ω)/(max Ω − min Ω), computed separately for every tensor ("per layer", as the
    official L2UL code does). A constant tensor, for which this is 0/0, becomes all zeros (the
    official code gives NaN): no entry stands out, so none is treated as important. L2UL then
    weights the penalty by 1 − Ω̂.

    Args:
        importance: Scores keyed by parameter name, e.g. from :func:`mas_importance`.

    Returns:
        A new dict with the same keys, shapes, dtypes and devices; values in [0, 1]. Each
        non-constant tensor has minimum 0 and maximum 1.

    Raises:
        InvalidSettingsError: If a tensor is not floating point or holds NaN or infinity.

    Shape:
        - importance: {name: tensor of any shape}.
        - output: {name: tensor of the same shape}.
    """
    problems = [
        f"{name!r} (dtype {value.dtype})"
        for name, value in importance.items()
        if not value.is_floating_point() or not bool(torch.isfinite(value).all())
    ]
    if problems:
        raise InvalidSettingsError(
            "importance must hold finite floating-point tensors; these do not: "
            + ", ".join(problems)
            + "."
        )
    normalized = {}
    for name, value in importance.items():
        value = value.detach()
        if value.numel() == 0:
            normalized[name] = value.clone()
            continue
        low, high = value.min(), value.max()
        span = high - low
        if bool(span > 0):
            normalized[name] = ((value - low) / span).clamp(0.0, 1.0)
        else:
            normalized[name] = torch.zeros_like(value)
    return normalized


def importance_penalty(
    model: nn.Module, reference: dict[str, Tensor], weights: dict[str, Tensor]
) -> Tensor:
    """Return ½ Σ_name Σ_i weights[name]_i · (θ_i − reference[name]_i)².

    The sum runs over the named parameters of ``model`` that appear in ``weights``; parameters
    absent from ``weights`` are free. L2UL uses ``weights = 1 − Ω̂`` (see
    :func:`normalize_importance`) and ``reference`` = the pre-trained parameters θ₀. The result is
    differentiable with respect to the model's parameters: its gradient is w·(θ − θ₀).

    Args:
        model: Model whose current parameters θ are penalized.
        reference: θ₀ for every name in ``weights``, on the parameters' devices.
        weights: Non-negative weights, keyed by parameter name, on the parameters' devices.

    Returns:
        A scalar tensor in the dtype and on the device of the first penalized parameter (0 when
        ``weights`` is empty).

    Raises:
        InvalidSettingsError: If a name in ``weights`` is not a parameter of ``model`` or missing
            from ``reference``, or a shape does not match (every problem is reported at once).

    Shape:
        - reference, weights: {name: tensor of the parameter's shape}.
        - output: () scalar.
    """
    parameters = dict(model.named_parameters())
    problems = []
    for name, weight in weights.items():
        if name not in parameters:
            problems.append(f"{name!r} is not a parameter of the model")
            continue
        shape = tuple(parameters[name].shape)
        if tuple(weight.shape) != shape:
            problems.append(f"weights[{name!r}] has shape {tuple(weight.shape)}, expected {shape}")
        if name not in reference:
            problems.append(f"{name!r} is missing from reference")
        elif tuple(reference[name].shape) != shape:
            problems.append(
                f"reference[{name!r}] has shape {tuple(reference[name].shape)}, expected {shape}"
            )
    if problems:
        raise InvalidSettingsError("invalid importance penalty: " + "; ".join(problems) + ".")

    terms = [
        (weight * (parameters[name] - reference[name]).pow(2)).sum()
        for name, weight in weights.items()
    ]
    if not terms:
        first = next(iter(parameters.values()), None)
        if first is None:
            return torch.zeros(())
        return first.new_zeros(())
    return 0.5 * torch.stack([term.to(terms[0].dtype) for term in terms]).sum()


def _output_size(logits: Tensor, *, squared: bool) -> Tensor:
    """Per-sample ‖f(x)‖₂ (or its square) of logits shaped (B, *)."""
    flat = logits.flatten(1)
    if squared:
        return flat.pow(2).sum(dim=1)
    return torch.linalg.vector_norm(flat, dim=1)


def _batch_abs_grads(
    scorer: nn.Module, trainable: dict[str, nn.Parameter], batch: Tensor, *, squared: bool
) -> dict[str, Tensor]:
    """|∂/∂θ mean_B s(x)|·|B| for one batch (the official estimator)."""
    loss = _output_size(scorer(batch), squared=squared).mean()
    grads = torch.autograd.grad(loss, list(trainable.values()), allow_unused=True)
    return {
        name: g.abs() * batch.shape[0]
        for name, g in zip(trainable, grads, strict=True)
        if g is not None
    }


def _per_sample_abs_grads(
    scorer: nn.Module, trainable: dict[str, nn.Parameter], batch: Tensor, *, squared: bool
) -> dict[str, Tensor]:
    """Σ_{x∈B} |∂s(x)/∂θ| for one batch, with per-sample gradients from ``torch.func``."""
    params = {name: p.detach() for name, p in trainable.items()}
    frozen = {name: p.detach() for name, p in scorer.named_parameters() if not p.requires_grad}
    buffers = dict(scorer.named_buffers())

    def size_of_one(theta: dict[str, Tensor], sample: Tensor) -> Tensor:
        logits = functional_call(scorer, (theta, frozen, buffers), (sample.unsqueeze(0),))
        return _output_size(logits, squared=squared).sum()

    per_sample = vmap(grad(size_of_one), in_dims=(None, 0))(params, batch)
    return {name: g.abs().sum(dim=0) for name, g in per_sample.items()}


def _check_mas(x: Tensor, *, batch_size: int, bn_mode: str, per_sample: bool | None) -> None:
    """Raise one :class:`InvalidSettingsError` listing every problem with a MAS request."""
    problems = []
    if x.dim() < 2 or x.shape[0] == 0:
        problems.append(f"x must have shape (N, *) with N >= 1, got {tuple(x.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        problems.append(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if bn_mode not in _BN_MODES:
        problems.append(
            f"bn_mode must be one of {', '.join(map(repr, _BN_MODES))}, got {bn_mode!r}"
        )
    if per_sample is True and bn_mode == "train":
        problems.append(
            "per_sample=True needs bn_mode='eval': with batch statistics a sample's output "
            "depends on its batch; pass per_sample=False (the official estimator) or "
            "bn_mode='eval'"
        )
    if problems:
        raise InvalidSettingsError("invalid MAS request: " + "; ".join(problems) + ".")
