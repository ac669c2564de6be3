"""``digits``: scikit-learn's bundled 8x8 handwritten digits, split 1347 train / 450 test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from amnesiac.data.splits import Splits, make_splits

__all__ = ["load_digits"]


def load_digits(name: str, data_dir: str | Path | None, download: bool) -> Splits:
    """Load scikit-learn's digits (``data_dir`` and ``download`` are unused: it is bundled)."""
    from sklearn.datasets import load_digits as sklearn_load_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_load_digits()
    images = np.asarray(digits.images, dtype=np.float32) / np.float32(16.0)
    labels = np.asarray(digits.target, dtype=np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=450, random_state=0, stratify=labels
    )
    return make_splits(
        name,
        torch.from_numpy(np.ascontiguousarray(train_x)).unsqueeze(1),
        torch.from_numpy(np.ascontiguousarray(train_y)),
        torch.from_numpy(np.ascontiguousarray(test_x)).unsqueeze(1),
        torch.from_numpy(np.ascontiguousarray(test_y)),
        [str(i) for i in range(10)],
    )
