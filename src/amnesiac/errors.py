"""Exceptions raised by amnesiac.

Every error is an :class:`AmnesiacError` and also a built-in exception type, so callers can catch
either. Messages say what was given, why it is wrong and what to do instead.
"""

from __future__ import annotations


class AmnesiacError(Exception):
    """Base class of every error amnesiac raises on purpose."""


class InvalidForgetSetError(AmnesiacError, ValueError):
    """A forget set is empty, has duplicates, out-of-range or non-integer indices."""


class DatasetNotFoundError(AmnesiacError, FileNotFoundError):
    """A dataset's files cannot be found and cannot be downloaded."""


class UnknownNameError(AmnesiacError, KeyError):
    """A method, dataset or architecture name is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class InvalidSettingsError(AmnesiacError, ValueError):
    """A settings value has the wrong type or is out of range."""


class CheckpointError(AmnesiacError, ValueError):
    """A checkpoint is missing, corrupt, unsafe, or does not fit the model or dataset."""


class DivergenceError(AmnesiacError, FloatingPointError):
    """A loss or a weight became NaN or infinite during training."""


class AnchorError(AmnesiacError, ValueError):
    """An anchor set that cannot be used: wrong shape, empty, changed, or trained on."""


class ResultsFileError(AmnesiacError, ValueError):
    """A benchmark results file holds a line that is neither a row nor a torn last write."""
