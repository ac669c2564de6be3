"""Forget sets: which training examples to unlearn, given as a spec, a file or indices.

A forget set is a 1-D int64 tensor of distinct indices into the training set. The retain set is
its complement (:func:`retain_indices`). Every way of giving a forget set goes through
:func:`parse_forget`, which checks everything and reports every problem in one error.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor

from amnesiac.errors import InvalidForgetSetError, InvalidSettingsError

__all__ = ["forget_spec_help", "parse_forget", "retain_eval_indices", "retain_indices"]

logger = logging.getLogger(__name__)

_FORMS = (
    ("random:K[:SEED]", "K training indices drawn uniformly at random (SEED defaults to 0)"),
    ("class:C:K[:SEED]", "K random training indices with label C (SEED defaults to 0)"),
    ("PATH.txt", "one index per line; blank lines and '#' comments are ignored"),
    ("PATH.npy", "a 1-D integer NumPy array (saved with numpy.save)"),
    ("PATH.csv", "a CSV file with a header row that has an 'index' column"),
)
_SUFFIXES = (".txt", ".npy", ".csv")
_INTEGER = re.compile(r"[+-]?\d+")
_SPEC_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_-]+:")  # "random:", "class:", not "C:\".
_MAX_SEED = 2**63 - 1
_SHOWN = 5  # How many offending values an error message lists.


def forget_spec_help() -> str:
    """Return a description of the accepted forget-set forms, for help texts and errors.

    Example:
        >>> print(forget_spec_help().splitlines()[0])
        A forget set is one of:
    """
    width = max(len(form) for form, _ in _FORMS)
    lines = [f"  {form.ljust(width)}  {text}" for form, text in _FORMS]
    lines.append(
        "  or, from Python, a sequence, NumPy array or tensor of distinct integer indices."
    )
    return "A forget set is one of:\n" + "\n".join(lines)


def parse_forget(
    spec: str | Path | Sequence[int] | np.ndarray | Tensor,
    train_y: Tensor,
    *,
    name: str = "forget",
) -> Tensor:
    """Turn a forget-set spec into validated indices into the training set.

    Args:
        spec: One of

            - ``"random:K[:SEED]"``: ``K`` indices drawn uniformly at random from the training set
              with ``torch.randperm`` and a generator seeded with ``SEED`` (default 0);
            - ``"class:C:K[:SEED]"``: ``K`` random indices of training examples labelled ``C``;
            - a path (``str`` or ``Path``) to a ``.txt`` file (one index per line, blank lines
              and ``#`` comments ignored), a ``.npy`` file (1-D integer array) or a ``.csv``
              file (header row with an ``index`` column);
            - a sequence, NumPy array or tensor of integer indices.
        train_y: The training labels; their length is the training set size.
        name: What the set is called in error messages.

    Returns:
        The indices as int64, in the order given (drawn order for ``random`` and ``class``).

    Shape:
        - train_y: ``(N,)`` integer labels.
        - output: ``(K,)`` int64, distinct, each in ``[0, N)``.

    Raises:
        InvalidForgetSetError: If the set is empty, has duplicates, out-of-range or non-integer
            indices, asks for more indices than there are, names an unknown class, or the spec
            is malformed or names a missing file. Every problem found is listed.

    Example:
        >>> import torch
        >>> labels = torch.tensor([0, 1, 0, 1, 0, 1])
        >>> parse_forget("class:1:2", labels).tolist()
        [5, 1]
        >>> parse_forget([4, 0], labels).tolist()
        [4, 0]
    """
    labels = _check_labels(train_y)
    n = len(labels)
    if isinstance(spec, Tensor):
        source = f"(tensor of {spec.numel()} values)"
        values, problems = _from_tensor(spec, name)
    elif isinstance(spec, np.ndarray):
        source = f"(array of {spec.size} values)"
        values, problems = _from_array(spec, name)
    elif isinstance(spec, Path):
        source = f"from {spec}"
        values, problems = _from_file(spec, name)
    elif isinstance(spec, str):
        text = spec.strip()
        source = f"from {text!r}"
        kind = text.split(":", 1)[0].lower()
        if kind == "random":
            return _random_spec(text, labels, name)
        if kind == "class":
            return _class_spec(text, labels, name)
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # "~user" for a user that does not exist
            path = Path(text)
        values, problems = _from_file(path, name, text)
    elif isinstance(spec, (Sequence, range)) and not isinstance(spec, (bytes, bytearray)):
        source = f"(sequence of {len(spec)} values)"
        values, problems = _from_sequence(spec)
    else:
        raise InvalidForgetSetError(
            f"a {name} set cannot be a {type(spec).__name__}. {forget_spec_help()}"
        )
    # An unreadable set is not reported as empty too.
    problems += _check_values(values, n, name, allow_empty=bool(problems))
    _raise_if(problems, name, source)
    logger.debug("%s set %s: %d indices", name, source, len(values))
    return torch.tensor(values, dtype=torch.int64)


def retain_indices(n: int, forget: Tensor) -> Tensor:
    """Return the indices of ``range(n)`` not in ``forget``, sorted.

    Args:
        n: The training set size.
        forget: Distinct indices in ``[0, n)``; may be empty.

    Returns:
        The retain indices, sorted ascending; ``len(forget) + len(retain) == n``.

    Shape:
        - forget: ``(K,)`` integer.
        - output: ``(n - K,)`` int64.

    Raises:
        InvalidSettingsError: If ``n`` is not a non-negative integer.
        InvalidForgetSetError: If ``forget`` is not 1-D integer, or has duplicates or indices
            outside ``[0, n)``.

    Example:
        >>> import torch
        >>> retain_indices(5, torch.tensor([3, 0])).tolist()
        [1, 2, 4]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidSettingsError(
            f"n must be a non-negative integer (the training set size), got {n!r}"
        )
    n = int(n)
    forget_tensor = torch.as_tensor(forget)
    values, problems = _from_tensor(forget_tensor, "forget")
    problems += _check_values(values, n, "forget", allow_empty=True)  # Empty is fine here.
    _raise_if(problems, "forget", f"(tensor of {forget_tensor.numel()} values)")
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.tensor(values, dtype=torch.int64)] = False
    return keep.nonzero().squeeze(1)


def retain_eval_indices(n: int, forget: Tensor, size: int, seed: int) -> Tensor:
    """The seeded subset of :func:`retain_indices` on which the CLI, the bench and the continual
    scenario measure D_r: ``size`` of them drawn with ``seed`` and sorted (all when ``size`` is 0
    or at least their number).

    Example:
        >>> retain_eval_indices(10, torch.tensor([0, 1]), 3, seed=0).tolist()
        [2, 6, 9]
    """
    retain = retain_indices(n, forget)
    if 0 < size < len(retain):
        g = torch.Generator().manual_seed(seed)
        retain = retain[torch.randperm(len(retain), generator=g)[:size]].sort().values
    return retain


# -------------------------------------------------------------------------------------- helpers
def _raise_if(problems: Sequence[str], name: str, source: str) -> None:
    if problems:
        _fail(problems, name, source)


def _fail(problems: Sequence[str], name: str, source: str) -> NoReturn:
    head = f"invalid {name} set {source}"
    if len(problems) == 1:
        raise InvalidForgetSetError(f"{head}: {problems[0]}.")
    raise InvalidForgetSetError(f"{head}:\n" + "\n".join(f"  - {p}" for p in problems))


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    if len(items) > _SHOWN:
        shown += f" (and {len(items) - _SHOWN} more)"
    return shown


def _check_labels(train_y: Tensor) -> Tensor:
    labels = torch.as_tensor(train_y)
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InvalidSettingsError(
            f"train_y must be a 1-D integer tensor of training labels, got {labels.dtype} of "
            f"shape {tuple(labels.shape)}"
        )
    return labels.cpu()


def _check_values(
    values: Sequence[int], n: int, name: str, *, allow_empty: bool = False
) -> list[str]:
    """Return the problems of integer ``values`` as indices into a set of size ``n``."""
    problems: list[str] = []
    if not values and not allow_empty:
        problems.append(f"the {name} set is empty; it needs at least one index")
    outside = [v for v in values if not 0 <= v < n]
    if len(outside) == 1:
        problems.append(f"{name} index {outside[0]} is outside the training set of size {n}")
    elif outside:
        problems.append(
            f"{len(outside)} {name} indices are outside the training set of size {n}: "
            f"{_listing([str(v) for v in outside])}; valid indices are 0 to {n - 1}"
        )
    duplicated = [(v, c) for v, c in Counter(values).items() if c > 1]
    if duplicated:
        problems.append(
            f"the {name} set has {len(duplicated)} duplicated "
            f"{'index' if len(duplicated) == 1 else 'indices'}: "
            f"{_listing([f'{v} ({c} times)' for v, c in duplicated])}; each index may appear once"
        )
    return problems


def _from_tensor(tensor: Tensor, name: str) -> tuple[list[int], list[str]]:
    """Integer values of a 1-D tensor, or the problems that prevent reading them."""
    if tensor.dtype == torch.bool:
        return [], [
            f"the {name} indices are booleans (a mask?); pass integer indices instead, e.g. "
            "mask.nonzero().squeeze(1)"
        ]
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
        return [], [
            f"the {name} indices have dtype {tensor.dtype}; they must be integers (convert "
            "with .long())"
        ]
    if tensor.dim() != 1:
        return [], [f"the {name} indices have shape {tuple(tensor.shape)}; expected a 1-D tensor"]
    return [int(v) for v in tensor.detach().cpu().tolist()], []


def _from_array(array: np.ndarray, name: str) -> tuple[list[int], list[str]]:
    """Integer values of a 1-D array, or the problems that prevent reading them."""
    if array.dtype == object:
        if array.ndim != 1:
            return [], [f"the {name} indices have shape {array.shape}; expected a 1-D array"]
        return _from_sequence(list(array))
    if array.dtype == np.bool_:
        return [], [
            f"the {name} indices are booleans (a mask?); pass integer indices instead, e.g. "
            "np.flatnonzero(mask)"
        ]
    if array.dtype.kind not in "iu":
        return [], [
            f"the {name} indices have dtype {array.dtype}; they must be integers (convert with "
            ".astype(np.int64))"
        ]
    if array.ndim != 1:
        return [], [f"the {name} indices have shape {array.shape}; expected a 1-D array"]
    return [int(v) for v in array.tolist()], []


def _from_sequence(items: Sequence[Any]) -> tuple[list[int], list[str]]:
    values: list[int] = []
    bad: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, Tensor) and item.numel() == 1 and not item.dtype.is_floating_point:
            item = item.item()
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            bad.append(f"element {i}: {item!r} ({type(item).__name__})")
        else:
            values.append(int(item))
    problems = [f"{len(bad)} values are not integers: {_listing(bad)}"] if bad else []
    return values, problems


def _parse_lines(lines: Sequence[tuple[int, str]], file_name: str) -> tuple[list[int], list[str]]:
    """Parse ``(line number, text)`` pairs of integers."""
    values: list[int] = []
    bad: list[str] = []
    for line_number, text in lines:
        if _INTEGER.fullmatch(text):
            values.append(int(text))
        else:
            bad.append(f"line {line_number} of {file_name}: {text!r} is not an integer")
    if len(bad) > _SHOWN:
        bad = [*bad[:_SHOWN], f"and {len(bad) - _SHOWN} more lines that are not integers"]
    return values, bad


def _from_file(path: Path, name: str, given: str | None = None) -> tuple[list[int], list[str]]:
    """Read indices from a ``.txt``, ``.npy`` or ``.csv`` file."""
    given = str(path) if given is None else given
    suffix = path.suffix.lower()
    if not path.is_file():
        if path.is_dir():
            problem = f"{name}-set file {given!r} is a folder, not a file"
        elif suffix in _SUFFIXES:
            problem = f"{name}-set file {given!r} does not exist"
        elif _SPEC_LIKE.match(given):
            problem = f"malformed {name} spec {given!r}: it is neither a known spec nor a file"
        else:
            problem = f"{given!r} is neither a {name} spec nor an existing .txt, .npy or .csv file"
        raise InvalidForgetSetError(f"{problem}. {forget_spec_help()}")
    if suffix not in _SUFFIXES:
        raise InvalidForgetSetError(
            f"{name}-set file {given!r} has extension {suffix or '(none)'!r}; use one of "
            f"{', '.join(_SUFFIXES)}. {forget_spec_help()}"
        )
    try:
        if suffix == ".npy":
            return _from_npy(path)
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidForgetSetError(f"cannot read {name}-set file {given!r}: {err}") from err
    if suffix == ".txt":
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            content = line.split("#", 1)[0].strip()
            if content:
                lines.append((number, content))
        return _parse_lines(lines, path.name)
    return _from_csv(text, path.name)


def _from_npy(path: Path) -> tuple[list[int], list[str]]:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise InvalidForgetSetError(
            f"cannot read {path} as a NumPy array without pickle ({err}); save a 1-D integer "
            "array with numpy.save(path, indices.astype(numpy.int64))"
        ) from err
    if not isinstance(array, np.ndarray):
        raise InvalidForgetSetError(
            f"{path} holds a {type(array).__name__}, not an array; save one 1-D integer array "
            "with numpy.save"
        )
    return _from_array(array, f"{path.name}")


def _from_csv(text: str, file_name: str) -> tuple[list[int], list[str]]:
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    columns = [column.strip().lower() for column in header or []]
    if "index" not in columns:
        found = ", ".join(repr(c) for c in (header or [])) or "nothing"
        raise InvalidForgetSetError(
            f"{file_name} needs a header row with an 'index' column; its first row has "
            f"{found}. Write e.g. 'index' on the first line and one index per line below"
        )
    column = columns.index("index")
    lines: list[tuple[int, str]] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        cell = row[column].strip() if column < len(row) else ""
        lines.append((reader.line_num, cell))
    return _parse_lines(lines, file_name)


def _spec_int(text: str, what: str, spec: str, problems: list[str]) -> int | None:
    if _INTEGER.fullmatch(text.strip()):
        return int(text)
    problems.append(f"{what} {text!r} in {spec!r} is not an integer")
    return None


def _parse_spec(
    spec: str, fields: Sequence[str], name: str
) -> tuple[list[int | None], int, list[str]]:
    """Split ``kind:F1:F2[:SEED]`` into integers; return ``(fields, seed, problems)``."""
    parts = spec.split(":")[1:]
    if len(parts) not in (len(fields), len(fields) + 1):
        form = next(form for form, _ in _FORMS if form.startswith(spec.split(":", 1)[0].lower()))
        raise InvalidForgetSetError(
            f"malformed {name} spec {spec!r}: expected {form}. {forget_spec_help()}"
        )
    problems: list[str] = []
    numbers = [
        _spec_int(p, f, spec, problems) for p, f in zip(parts[: len(fields)], fields, strict=True)
    ]
    seed = 0
    if len(parts) > len(fields):
        parsed = _spec_int(parts[-1], "SEED", spec, problems)
        if parsed is not None and not 0 <= parsed <= _MAX_SEED:
            problems.append(f"SEED is {parsed}; it must be between 0 and {_MAX_SEED}")
        elif parsed is not None:
            seed = parsed
    return numbers, seed, problems


def _check_k(k: int | None, available: int, of_what: str, problems: list[str], name: str) -> None:
    if k is None:
        return
    if k < 0:
        problems.append(f"K is {k}; the number of {name} indices cannot be negative")
    elif k == 0:
        problems.append(f"K is 0; the {name} set needs at least one index")
    elif k > available:
        problems.append(f"K is {k} but {of_what} has only {available} examples")


def _random_spec(spec: str, labels: Tensor, name: str) -> Tensor:
    (k,), seed, problems = _parse_spec(spec, ["K"], name)
    _check_k(k, len(labels), "the training set", problems, name)
    if problems or k is None:  # A None K is always among the problems.
        _fail(problems, name, f"from {spec!r}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(labels), generator=generator)[:k]


def _class_spec(spec: str, labels: Tensor, name: str) -> Tensor:
    (label, k), seed, problems = _parse_spec(spec, ["C", "K"], name)
    members = torch.zeros(0, dtype=torch.int64)
    if label is not None:
        members = (labels == label).nonzero().squeeze(1)
        if len(members) == 0:
            present = sorted(int(c) for c in labels.unique().tolist())
            shown = ", ".join(str(c) for c in present[:20]) + (", ..." if len(present) > 20 else "")
            problems.append(
                f"class {label} has no training examples; the training labels are {shown}"
            )
        else:
            _check_k(k, len(members), f"class {label}", problems, name)
    if problems or k is None:  # A None K is always among the problems.
        _fail(problems, name, f"from {spec!r}")
    generator = torch.Generator().manual_seed(seed)
    return members[torch.randperm(len(members), generator=generator)[:k]]
