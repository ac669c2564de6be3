"""L2 projected gradient descent (PGD) and the choice of attack targets.

L2UL (Cha et al., AAAI 2024) regularizes unlearning with targeted adversarial examples of the
instances to forget. The official code builds them with advertorch's ``L2PGDAttack``; advertorch
no longer imports on current PyTorch, so :func:`pgd_l2` re-implements that attack, and can also
follow torchattacks' ``PGDL2`` step order so the two can be compared.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from amnesiac.ops import pgd_l2, random_targets
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    >>> x = torch.rand(4, 1, 8, 8)
    >>> y = torch.tensor([0, 1, 2, 3])
    >>> target = random_targets(y, 10, 1, generator=torch.Generator().manual_seed(0))[0]
    >>> x_adv = pgd_l2(model, x, target, eps=0.5, step_size=0.1, steps=10,
    ...                generator=torch.Generator().manual_seed(0))
    >>> bool(((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all())
    True
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amnesiac.errors import InvalidSettingsError

__all__ = ["paper_targets", "pgd_l2", "random_targets"]

Order = Literal["clip_then_project", "project_then_clip"]
GradNormalization = Literal["advertorch", "torchattacks"]
_ORDERS: tuple[str, ...] = ("clip_then_project", "project_then_clip")
_GRAD_NORMALIZATIONS: tuple[str, ...] = ("advertorch", "torchattacks")

# advertorch's ``normalize_by_pnorm`` divides by max(norm, 1e-6); torchattacks' PGDL2 divides by
# norm + 1e-10 (its ``eps_for_division``).
_ADVERTORCH_FLOOR = 1e-6
_TORCHATTACKS_EPS_FOR_DIVISION = 1e-10


def pgd_l2(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    targeted: bool = True,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    start: Tensor | None = None,
    order: Order = "clip_then_project",
    grad_normalization: GradNormalization = "advertorch",
) -> Tensor:
    """Return L2-bounded adversarial examples of ``x`` in [0, 1] pixel space.

    This is advertorch's ``L2PGDAttack`` as used by the official L2UL code (``clip_min=0``,
    ``clip_max=1``, cross-entropy with sum reduction):

    1. Start: with ``random_start``, draw u ~ U[0, 1]^d, set δ = u − x and shrink it per sample to
       ‖δ‖₂ ≤ ``eps`` (δ·min(1, eps/‖δ‖₂)). Otherwise δ = 0, or δ = ``start`` − x when ``start``
       is given (``start`` overrides ``random_start``).
    2. ``steps`` times: ℓ = Σ_batch CE(model(x + δ), target); g = ∇_δ ℓ, negated when ``targeted``
       (the loss is minimised) and kept when not (the loss is maximised); g is normalized per
       sample (below); δ ← δ + step_size·g; then δ is made feasible again (below).
    3. Return clip(x + δ, 0, 1).

    Making δ feasible (after the start and after every step) follows ``order``:

    * ``"clip_then_project"`` (advertorch, the official code; default): δ ← clip(x + δ, 0, 1) − x,
      then δ ← δ·min(1, eps/‖δ‖₂).
    * ``"project_then_clip"`` (torchattacks' ``PGDL2``): δ ← δ·min(1, eps/‖δ‖₂), then
      δ ← clip(x + δ, 0, 1) − x.

    Both give points inside the box and the ball; they differ when the box clip is active.

    Normalizing the gradient follows ``grad_normalization``:

    * ``"advertorch"`` (the official code; default): g ← g / max(‖g‖₂, 1e-6). Where the loss is
      nearly flat (e.g. once a target is reached with high confidence) the steps shrink.
    * ``"torchattacks"``: g ← g / (‖g‖₂ + 1e-10), which keeps full-length steps down to far smaller
      gradients. torchattacks averages the cross-entropy over the batch instead of summing it, so
      its steps match ours only for batches of one sample or gradient norms well above 1e-10·N.

    The model is used as it is given: put it in ``eval()`` mode first (the official code does). Its
    mode, parameters, ``requires_grad`` flags and ``.grad`` fields are left untouched: gradients
    are taken with respect to the input only (in ``train()`` mode, BatchNorm layers would still
    update their running statistics on every forward pass). The computation runs on the model's
    device, in the dtype of ``x``; the result comes back on the device of ``x``.

    Args:
        model: Classifier mapping inputs in [0, 1] to logits of shape (B, C).
        x: Clean inputs, in [0, 1].
        target: Class indices: the labels to reach (``targeted``) or to move away from.
        eps: L2 radius of the perturbation, per sample, in [0, 1] pixel units; ≥ 0.
        step_size: Length of each normalized gradient step (advertorch's ``eps_iter``); ≥ 0.
        steps: Number of gradient steps (advertorch's ``nb_iter``); ≥ 0.
        targeted: Minimise the cross-entropy to ``target`` (True) or maximise it (False).
        random_start: Start from a random point of the ball, drawn as in step 1.
        generator: Source of the random start. It may live on any device; the draw is made there
            and moved, so a CPU generator gives the same start on every device. None uses
            PyTorch's global generator.
        batch_size: Number of samples attacked together; None attacks all at once. The random
            start is drawn for the whole input first, so the result does not depend on it (up to
            floating-point differences of the model on different batch sizes).
        start: Initial adversarial inputs, shape of ``x``; made feasible as above. Overrides
            ``random_start``.
        order: Order of the box clip and the L2 projection, see above.
        grad_normalization: How the gradient is scaled to unit length, see above.

    Returns:
        The adversarial inputs, detached, with the dtype and device of ``x``. With ``eps == 0``,
        or with ``steps == 0`` and neither ``random_start`` nor ``start``, a copy of ``x``.

    Raises:
        InvalidSettingsError: If a setting is out of range, or the shapes, dtypes or values of
            ``x``, ``target`` or ``start`` do not fit (every problem is reported at once).

    Shape:
        - x: (N, *) with N samples, e.g. (N, C, H, W); values in [0, 1].
        - target: (N,), integer class indices in [0, num_classes).
        - start: (N, *), same as ``x``.
        - output: (N, *), same as ``x``.
    """
    _check_pgd(
        x,
        target,
        eps=eps,
        step_size=step_size,
        steps=steps,
        batch_size=batch_size,
        start=start,
        order=order,
        grad_normalization=grad_normalization,
    )
    if eps == 0 or (steps == 0 and start is None and not random_start):
        # The ball of radius 0 holds only x; with no start and no step nothing moves.
        return x.detach().clone()

    n = x.shape[0]
    if start is not None:
        delta0 = start.detach().to(device=x.device, dtype=x.dtype) - x.detach()
    elif random_start:
        device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device)
        delta0 = u.to(x.device) - x.detach()
    else:
        delta0 = torch.zeros_like(x)

    compute_device = _model_device(model, default=x.device)
    chunk = n if batch_size is None else batch_size
    pieces = []
    for lo in range(0, n, max(chunk, 1)):
        hi = min(lo + chunk, n)
        x_adv = _attack(
            model,
            x[lo:hi].detach().to(compute_device),
            target[lo:hi].detach().to(compute_device),
            delta0[lo:hi].to(compute_device),
            eps=eps,
            step_size=step_size,
            steps=steps,
            targeted=targeted,
            order=order,
            grad_normalization=grad_normalization,
        )
        pieces.append(x_adv.to(x.device))
    if not pieces:
        return x.detach().clone()
    return torch.cat(pieces).detach()


def random_targets(
    y: Tensor, num_classes: int, n: int, *, generator: torch.Generator | None
) -> Tensor:
    """Draw ``n`` attack targets per sample, uniformly among the classes other than its label.

    This is our rule (the default): every target differs from the true label and each of the
    C − 1 other classes has probability 1/(C − 1). It replaces the official code's rule, which
    :func:`paper_targets` reproduces.

    Args:
        y: True labels.
        num_classes: Number of classes C; ≥ 2.
        n: Number of targets per sample (the official ``num_adv_images``); ≥ 0.
        generator: Source of the draw. The draw is made on its device (CPU when None, with
            PyTorch's global generator) and moved to the device of ``y``.

    Returns:
        Targets as ``int64``, on the device of ``y``; row r holds round r's target of every sample.

    Raises:
        InvalidSettingsError: If ``num_classes`` < 2, ``n`` < 0, or ``y`` is not a 1-D integer
            tensor with values in [0, num_classes).

    Shape:
        - y: (N,).
        - output: (n, N), with ``output[r, i] != y[i]``.
    """
    _check_targets(y, num_classes, n)
    device = generator.device if generator is not None else torch.device("cpu")
    draw = torch.randint(0, num_classes - 1, (n, y.shape[0]), generator=generator, device=device)
    draw = draw.to(y.device)
    labels = y.to(torch.int64).unsqueeze(0)
    # Skip the true label: values at or above it move up by one.
    return draw + (draw >= labels).to(torch.int64)


def paper_targets(
    y: Tensor, num_classes: int, n: int, *, generator: torch.Generator | None
) -> Tensor:
    """Draw ``n`` attack targets per sample with the official L2UL rule (``preset="paper"``).

    The official code draws t uniformly among all C classes and replaces a collision t == y by
    the constant class C // 2 (its ``(torch.rand(...).long() * C + C) // 2`` is always C // 2).
    Hence class C // 2 is drawn twice as often as the others, and a sample whose label is C // 2
    keeps target == label with probability 1/C: a "perturbation" towards its own class. Use
    :func:`random_targets` unless the official behaviour is wanted.

    Only the rule is reproduced, not the official random stream (which was drawn on CUDA).
    Arguments, result, errors and shapes as :func:`random_targets`, except that a target may
    equal the label.
    """
    _check_targets(y, num_classes, n)
    device = generator.device if generator is not None else torch.device("cpu")
    draw = torch.randint(0, num_classes, (n, y.shape[0]), generator=generator, device=device)
    draw = draw.to(y.device)
    labels = y.to(torch.int64).unsqueeze(0)
    return torch.where(draw == labels, torch.full_like(draw, num_classes // 2), draw)


def _attack(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    delta0: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    targeted: bool,
    order: Order,
    grad_normalization: GradNormalization,
) -> Tensor:
    """Run PGD on one chunk; all tensors are already on the compute device."""
    x_adv = _feasible(x, delta0, eps, order)
    with torch.enable_grad():
        for step in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            logits = model(x_adv)
            if step == 0:
                _check_logits(logits, target)
            loss = F.cross_entropy(logits, target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, [x_adv])
            if targeted:
                grad = -grad
            norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
            if grad_normalization == "advertorch":
                norms = norms.clamp_min(_ADVERTORCH_FLOOR)
            else:
                norms = norms + _TORCHATTACKS_EPS_FOR_DIVISION
            x_step = x_adv.detach() + step_size * grad / _per_sample(norms, x)
            x_adv = _feasible(x, x_step - x, eps, order)
    return x_adv.detach()


def _feasible(x: Tensor, delta: Tensor, eps: float, order: Order) -> Tensor:
    """Return x + δ made feasible (in the box [0, 1] and the ball ‖δ‖₂ ≤ eps) in ``order``."""
    if order == "clip_then_project":
        delta = torch.clamp(x + delta, 0.0, 1.0) - x
        delta = delta * _shrink_factor(delta, eps)
        return torch.clamp(x + delta, 0.0, 1.0)
    delta = delta * _shrink_factor(delta, eps)
    return torch.clamp(x + delta, 0.0, 1.0)


def _shrink_factor(delta: Tensor, eps: float) -> Tensor:
    """Per-sample min(1, eps/‖δ‖₂), shaped to broadcast against ``delta``; no 0/0."""
    norms = torch.linalg.vector_norm(delta.flatten(1), dim=1)
    tiny = torch.finfo(norms.dtype).tiny
    factor = torch.where(norms > eps, eps / norms.clamp_min(tiny), torch.ones_like(norms))
    return _per_sample(factor, delta)


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample ``values`` (B,) to (B, 1, ..., 1) to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _model_device(model: nn.Module, default: torch.device) -> torch.device:
    """Device of the model's first parameter or buffer, else ``default``."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return default


def _check_pgd(
    x: Tensor,
    target: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    batch_size: int | None,
    start: Tensor | None,
    order: str,
    grad_normalization: str,
) -> None:
    """Raise one :class:`InvalidSettingsError` listing every problem with the PGD request."""
    problems = []
    if not _is_finite_number(eps) or eps < 0:
        problems.append(f"eps must be a finite number >= 0, got {eps!r}")
    if not _is_finite_number(step_size) or step_size < 0:
        problems.append(f"step_size must be a finite number >= 0, got {step_size!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        problems.append(f"steps must be an integer >= 0, got {steps!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        problems.append(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
    if order not in _ORDERS:
        problems.append(f"order must be one of {', '.join(map(repr, _ORDERS))}, got {order!r}")
    if grad_normalization not in _GRAD_NORMALIZATIONS:
        choices = ", ".join(map(repr, _GRAD_NORMALIZATIONS))
        problems.append(f"grad_normalization must be one of {choices}, got {grad_normalization!r}")
    if not x.is_floating_point() or x.dim() < 2:
        problems.append(
            f"x must be a floating-point tensor of shape (N, *), got dtype {x.dtype} and shape "
            f"{tuple(x.shape)}"
        )
    elif x.numel() > 0 and (x.min() < 0 or x.max() > 1 or x.isnan().any()):
        problems.append(
            f"x must lie in [0, 1] (PGD works in pixel space), got values in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]; undo the normalization first"
        )
    if not _is_index_vector(target):
        problems.append(
            f"target must be a 1-D tensor of class indices, got dtype {target.dtype} and shape "
            f"{tuple(target.shape)}"
        )
    elif x.dim() >= 1 and target.shape[0] != x.shape[0]:
        problems.append(f"target has {target.shape[0]} entries but x has {x.shape[0]} samples")
    elif target.numel() > 0 and target.min() < 0:
        problems.append(f"target holds a negative class index {target.min().item()}")
    if start is not None and start.shape != x.shape:
        problems.append(
            f"start must have the shape of x {tuple(x.shape)}, got {tuple(start.shape)}"
        )
    if problems:
        raise InvalidSettingsError("invalid PGD request: " + "; ".join(problems) + ".")


def _check_logits(logits: Tensor, target: Tensor) -> None:
    """Check that the model returned (B, C) logits and that every target is below C."""
    if logits.dim() != 2:
        raise InvalidSettingsError(
            f"the model must return logits of shape (B, C), got shape {tuple(logits.shape)}."
        )
    if target.numel() > 0 and int(target.max()) >= logits.shape[1]:
        raise InvalidSettingsError(
            f"target holds class {int(target.max())} but the model has only {logits.shape[1]} "
            f"classes (0 to {logits.shape[1] - 1})."
        )


def _check_targets(y: Tensor, num_classes: int, n: int) -> None:
    """Raise one :class:`InvalidSettingsError` listing every problem with a target request."""
    problems = []
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        problems.append(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        problems.append(f"n must be an integer >= 0, got {n!r}")
    if not _is_index_vector(y):
        problems.append(
            f"y must be a 1-D tensor of integer labels, got dtype {y.dtype} and shape "
            f"{tuple(y.shape)}"
        )
    elif y.numel() > 0 and isinstance(num_classes, int) and num_classes >= 2:
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            problems.append(
                f"labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
                f"got values in [{low}, {high}]"
            )
    if problems:
        raise InvalidSettingsError("invalid target request: " + "; ".join(problems) + ".")


def _is_index_vector(t: Tensor) -> bool:
    """True for a 1-D tensor of integers (not floats, complex numbers or booleans)."""
    return (
        t.dim() == 1 and not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
    )


def _is_finite_number(value: object) -> bool:
    """True for a real, finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value == value and abs(value) != float("inf")
