"""Memory layout: channels-last convolutions, the faster layout for oneDNN (CPU) and cuDNN.

Speed only: the values are the same up to rounding. The benchmark's speed cell measures the gain
of a plain forward+backward pass (``layout_speedup`` in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

#: Images per batch where a model only runs forward (evaluation, features, the request page)
#: unless the caller says otherwise. On 2 cores of an AVX2-only AMD EPYC the Fashion-MNIST
#: ResNet-20 ran 1.7-1.9x faster per image at 128-256 than at 1,024 (float32, channels-last,
#: 4,096 test images; 0.64-0.90 against 1.40-1.59 ms): a larger batch's feature maps leave the
#: cache, and it would not fit large inputs in memory at all.
INFERENCE_BATCH_SIZE = 256


def to_channels_last(model: nn.Module, probe: Tensor) -> bool:
    """Store ``model``'s 4-D parameters and buffers channels-last, in place, and return whether
    it did.

    Only the strides change, never a value. Models without 4-D parameters are left alone, and so
    is a model whose forward pass on ``probe`` fails in that layout (e.g. it calls ``.view`` on a
    feature map); the probe runs in eval mode without gradients, so no BatchNorm statistic moves,
    and the model's train/eval mode is restored.
    """
    if not any(p.ndim == 4 for p in model.parameters()):
        return False
    model.to(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(probe)
    except RuntimeError:
        to_contiguous(model)
        return False
    finally:
        model.train(was_training)
    return True


def to_contiguous(model: nn.Module) -> nn.Module:
    """Store ``model``'s tensors in the default contiguous layout again, in place (what
    ``state_dict`` consumers such as safetensors expect); returns ``model``."""
    return model.to(memory_format=torch.contiguous_format)


def channels_last_copy(model: nn.Module, probe: Tensor) -> nn.Module:
    """A channels-last copy of ``model`` for inference, or ``model`` itself where that layout
    does not apply (see :func:`to_channels_last`) or is already there; ``model`` is never
    changed."""
    convs = [p for p in model.parameters() if p.ndim == 4]
    if all(p.is_contiguous(memory_format=torch.channels_last) for p in convs):
        return model  # nothing 4-D, or stored channels-last already: nothing to gain from a copy
    fast = copy.deepcopy(model)
    return fast if to_channels_last(fast, probe) else model
