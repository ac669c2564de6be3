"""Datasets by name, forget-set specs and splits.

Example:
    >>> from amnesiac.data import load_dataset, parse_forget, retain_indices
    >>> splits = load_dataset("digits")
    >>> forget = parse_forget("random:100:0", splits.train_y)
    >>> retain = retain_indices(len(splits.train_y), forget)
    >>> len(forget) + len(retain) == len(splits.train_y)
    True
"""

from amnesiac.data.datasets import Splits, list_datasets, load_dataset
from amnesiac.data.forget import (
    forget_spec_help,
    parse_forget,
    retain_eval_indices,
    retain_indices,
)
from amnesiac.data.surrogate import load_surrogate, surrogate_test_rows
from amnesiac.data.tensors import as_images, as_tensors

__all__ = [
    "Splits",
    "as_images",
    "as_tensors",
    "forget_spec_help",
    "list_datasets",
    "load_dataset",
    "load_surrogate",
    "parse_forget",
    "retain_eval_indices",
    "retain_indices",
    "surrogate_test_rows",
]
