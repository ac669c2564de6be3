"""The batches a method's steps draw (:class:`BatchSampling`, a base of
:class:`~amnesiac.methods.base.Unlearner`): D_f in order, D_r at random or by reshuffling
loaders, all from the run's generator."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from amnesiac.errors import InvalidSettingsError
from amnesiac.methods.result import UnlearnData
from amnesiac.methods.settings import StepConfig


class BatchSampling:
    """Batch helpers for methods; :class:`~amnesiac.methods.base.Unlearner` supplies the run's
    ``generator``, its ``step_config`` and the loaders' permutations (``_perms``)."""

    name: ClassVar[str] = ""
    generator: torch.Generator
    _perms: dict[str, list[Tensor]]

    @property
    def step_config(self) -> StepConfig:
        raise NotImplementedError

    def forget_batch(self, data: UnlearnData, step: int) -> Tensor:
        """Indices of step ``step``'s forget batch: sequential and cycled, like an unshuffled
        loader (``batch_size`` at most ``K``)."""
        k = len(data.forget_x)
        start = (step - 1) * self.step_config.batch_size
        size = min(self.step_config.batch_size, k)
        return torch.arange(start, start + size, device=data.forget_x.device) % k

    def retain_batch(self, data: UnlearnData, size: int) -> tuple[Tensor, Tensor]:
        """A random retain batch of ``size`` drawn with the run's generator."""
        if data.retain_x is None or data.retain_y is None:
            raise InvalidSettingsError(f"method {self.name!r} needs retain data; pass retain=")
        idx = self.sample(len(data.retain_x), size, data.retain_x.device)
        return data.retain_x[idx], data.retain_y[idx]

    def epoch_batch(
        self, stream: str, n: int, batch_size: int, ordinal: int, device: torch.device
    ) -> Tensor:
        """Indices of the ``ordinal``-th (1-based) batch of a loader named ``stream`` over
        ``range(n)`` that reshuffles every pass with the run's generator and keeps the last,
        smaller batch (``ceil(n / batch_size)`` batches per pass, :func:`passes_to_steps`)."""
        per_pass = -(-n // batch_size)
        epoch, pos = divmod(ordinal - 1, per_pass)
        perms = self._perms.setdefault(stream, [])
        while len(perms) <= epoch:
            perms.append(torch.randperm(n, generator=self.generator))
        return perms[epoch][pos * batch_size : (pos + 1) * batch_size].to(device)

    def round_batch(
        self, data: UnlearnData, entry: tuple[str, int], forget_batch: int, retain_batch: int
    ) -> tuple[str, Tensor, Tensor]:
        """The phase, images and labels of one :func:`alternating_schedule` entry: the next
        batch of D_f (``forget_batch``) or of D_r (``retain_batch``), each from its own
        reshuffling loader."""
        phase, ordinal = entry
        if phase == "forget":
            x, y, size = data.forget_x, data.forget_y, forget_batch
        elif data.retain_x is None or data.retain_y is None:
            raise InvalidSettingsError(f"method {self.name!r} needs retain data; pass retain=")
        else:
            x, y, size = data.retain_x, data.retain_y, retain_batch
        idx = self.epoch_batch(phase, len(x), size, ordinal, x.device)
        return phase, x[idx], y[idx]

    def sample(self, n: int, size: int, device: torch.device) -> Tensor:
        """``size`` indices drawn without replacement from ``range(n)`` with the run's generator."""
        return torch.randperm(n, generator=self.generator)[: min(size, n)].to(device)
