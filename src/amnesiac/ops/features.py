"""A classifier's penultimate features, from any ``nn.Module``, and the anchors nearest a
forget set by them."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from amnesiac.errors import InvalidSettingsError
from amnesiac.ops.layout import INFERENCE_BATCH_SIZE


def last_linear(model: nn.Module) -> nn.Linear | None:
    """The model's last ``nn.Linear`` in registration order (its classifier head), or ``None``."""
    found = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            found = m
    return found


def penultimate_features(model: nn.Module, x: Tensor) -> Tensor:
    """Penultimate features ``(N, D)`` of ``model`` on ``x``: its ``features()`` method where it
    has one that works (amnesiac's architectures), else the input of its last ``nn.Linear``,
    caught by a forward pre-hook during one forward pass (torchvision classifiers, an
    ``nn.Sequential``). Gradients flow; the hook is removed before this returns.

    Raises:
        InvalidSettingsError: The model has neither.

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> feats = penultimate_features(net, torch.ones(5, 1, 2, 2))
        >>> torch.equal(feats, net[:3](torch.ones(5, 1, 2, 2)))
        True
    """
    features = getattr(model, "features", None)
    if callable(features):
        try:
            out: Tensor = features(x)
            return out
        except NotImplementedError:
            pass
    head = last_linear(model)
    if head is None:
        raise InvalidSettingsError(
            f"{type(model).__name__} has no features() method and no nn.Linear layer whose input "
            "would be its penultimate features; give it a features(x) method returning (N, D)"
        )
    caught: list[Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: caught.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return caught[-1].flatten(1)


@torch.no_grad()
def batched_features(model: nn.Module, x: Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> Tensor:
    """:func:`penultimate_features` of ``x`` in batches of ``batch_size``, in eval mode, without
    gradients, in float32; the model's mode is restored after.

    Shape:
        returns ``(N, D)``.
    """
    was = model.training
    model.eval()
    try:
        return torch.cat(
            [
                penultimate_features(model, x[i : i + batch_size])
                for i in range(0, len(x), batch_size)
            ]
        ).float()
    finally:
        model.train(was)


def near_anchors(forget: Tensor, anchors: Tensor, per_instance: int) -> Tensor:
    """The anchors among the ``per_instance`` nearest of any forget instance, by the cosine of
    their features; sorted indices into ``anchors``, each once.

    Args:
        forget: Features of the forget instances, ``(K, D)``.
        anchors: Features of the anchors, ``(M, D)``.
        per_instance: Nearest anchors taken for each forget instance (at most ``M``).

    Shape:
        returns ``(n,)`` int64 with ``n <= min(M, K * per_instance)``.

    Example:
        >>> forget = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> anchors = torch.tensor([[2.0, 0.1], [0.1, 3.0], [-1.0, 0.0], [1.0, 0.2]])
        >>> near_anchors(forget, anchors, 1).tolist()
        [0, 1]
        >>> near_anchors(forget, anchors, 2).tolist()
        [0, 1, 3]
    """
    if per_instance < 1:
        raise InvalidSettingsError(f"per_instance must be >= 1, got {per_instance}")
    sim = F.normalize(forget.float(), dim=1) @ F.normalize(anchors.float(), dim=1).T
    nearest = sim.topk(min(per_instance, anchors.shape[0]), dim=1).indices
    return torch.unique(nearest.flatten())
