"""What a result was produced with, and when: recorded in ledger entries, reports, checkpoints."""

from __future__ import annotations

import platform
import time


def software_versions() -> dict[str, str]:
    """The software a request ran with, as ledger entries and reports record it."""
    import torch
    import torchvision

    from amnesiac import __version__

    return {
        "amnesiac": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": str(torch.get_num_threads()),
    }


#: How ledger entries and bench rows write a time (UTC).
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_stamp(seconds: float | None = None) -> str:
    """The time now (or ``seconds`` since the epoch) in UTC, as ledger entries and bench rows
    record it (``STAMP_FORMAT``)."""
    return time.strftime(STAMP_FORMAT, time.gmtime(seconds))
