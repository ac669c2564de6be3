"""Several processes, one job: the few ``torch.distributed`` facts amnesiac needs, in one place.

amnesiac runs on ``torch.distributed`` as launched by ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``); it has no launcher of its
own. Three kinds of work use it:

- data-parallel training (:func:`amnesiac.train_classifier`: ``pretrain``, ``retrain``),
- whole jobs shared out by index (LiRA shadow models, benchmark cells: :func:`share`),
- rank 0 alone writing what every rank computed (:func:`is_main`, then :func:`barrier`).

Outside a launcher every function here answers for one process (rank 0 of 1) and every
collective is a no-op, so code written with them runs unchanged in one process.

Example:
    >>> world_size(), rank(), is_main(), active()
    (1, 0, True, False)
    >>> share(range(10), rank=1, world=3)
    [1, 4, 7]
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

from amnesiac.errors import InvalidSettingsError

T = TypeVar("T")

#: How long a collective waits for the slowest process before failing. Ranks that share out
#: whole jobs (shadow models, benchmark cells) meet at a barrier only when all their jobs are
#: done, which can be hours apart; override with ``AMNESIAC_DIST_TIMEOUT`` (seconds).
DEFAULT_TIMEOUT_S = 12 * 3600

_local_depth = 0


def launched() -> bool:
    """Whether this process was started by a launcher with more than one process
    (``WORLD_SIZE`` > 1 in the environment, as ``torchrun --nproc-per-node 2`` sets it)."""
    return _env_int("WORLD_SIZE", 1) > 1


def initialized() -> bool:
    """Whether a ``torch.distributed`` process group is up in this process."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the job: the process group's size, else ``WORLD_SIZE``, else 1."""
    return dist.get_world_size() if initialized() else _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's rank: the process group's, else ``RANK``, else 0."""
    return dist.get_rank() if initialized() else _env_int("RANK", 0)


_this_rank = rank


def local_rank() -> int:
    """This process's rank on its own machine (``LOCAL_RANK``, else 0): its GPU index."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files and prints."""
    return rank() == 0


def active() -> bool:
    """Whether collectives reach other processes here: a process group of more than one
    process is up and no :func:`local` block is open."""
    return _local_depth == 0 and initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def local() -> Iterator[None]:
    """A block in which this process works on its own: :func:`active` is ``False``, so
    :func:`amnesiac.train_classifier` trains without ``DistributedDataParallel`` and shadow
    models are not shared out. For whole jobs shared out by index (a benchmark cell that
    retrains a model runs on one rank while the others run other cells)."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def init(timeout_s: float | None = None) -> bool:
    """Join the launcher's process group if there is one and it is not joined yet.

    The backend is ``gloo`` for CPU tensors, plus ``nccl`` for CUDA tensors where CUDA is
    available (each process then uses GPU ``LOCAL_RANK``). Returns whether this process is now
    in a group of more than one process.

    Args:
        timeout_s: How long a collective may wait (default: ``AMNESIAC_DIST_TIMEOUT``, else
            :data:`DEFAULT_TIMEOUT_S`).
    """
    if initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    if not dist.is_available():
        raise InvalidSettingsError(
            "WORLD_SIZE > 1 asks for several processes but this torch build has no "
            "torch.distributed; run in one process (without torchrun)"
        )
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise InvalidSettingsError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set; "
            "start the processes with torchrun (torchrun --nproc-per-node N -m amnesiac ...)"
        )
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        backend = "cpu:gloo,cuda:nccl"
    timeout = timeout_s or float(os.environ.get("AMNESIAC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return dist.get_world_size() > 1


def shutdown() -> None:
    """Leave the process group, if this process is in one (after a last :func:`barrier`)."""
    if initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    if active():
        dist.barrier()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """``values`` summed elementwise over the processes (``values`` itself in one process).

    Example:
        >>> all_reduce_sum([1.0, 2.5])
        [1.0, 2.5]
    """
    if not active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def processes() -> int:
    """How many processes work together here: :func:`world_size` where collectives reach
    them (:func:`active`), else 1."""
    return dist.get_world_size() if active() else 1


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers of ``module`` (e.g. BatchNorm running statistics) to every process, in
    place (nothing in one process)."""
    if not active():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def all_reduce_min(value: int) -> int:
    """The smallest of every process's ``value`` (``value`` itself in one process)."""
    if not active():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def share(items: Iterable[T], *, rank: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item starting at ``rank``.

    The shares of ranks ``0 .. world-1`` are disjoint, cover ``items`` and differ in size by at
    most one; with the items sorted longest first, each rank gets a similar load. ``rank`` and
    ``world`` default to this process's (:func:`rank`, :func:`world_size`).
    """
    r = _this_rank() if rank is None else rank
    w = world_size() if world is None else world
    if w < 1 or not 0 <= r < w:
        raise InvalidSettingsError(f"rank must be in [0, world), got rank {r} of world {w}")
    return list(items)[r::w]


def _device() -> torch.device:
    """Where the tensors of :func:`all_reduce_sum` live: the CPU if the group has a CPU
    backend (amnesiac's :func:`init` always adds gloo), else the current GPU."""
    backend = str(dist.get_backend())
    if "gloo" in backend or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidSettingsError(
            f"environment variable {name}={value!r} is not an integer; unset it or start the "
            "processes with torchrun"
        ) from None
