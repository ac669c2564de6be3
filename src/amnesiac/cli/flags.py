"""Command-line flags: generated from the settings dataclasses, and the ones commands share.

The shared flags are small parent parsers (argparse ``parents=``), each defined here once.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from amnesiac.data import forget_spec_help, list_datasets


# ------------------------------------------------------------------ flags from dataclasses
def _field_docs(cls: type) -> dict[str, str]:
    """Attribute descriptions from the Google-style ``Attributes:`` sections along the MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = klass.__doc__ or ""
        if "Attributes:" not in text:
            continue
        section = text.split("Attributes:", 1)[1]
        current = None
        for line in section.splitlines():
            m = re.match(r"^\s{4,8}(\w+): (.*)$", line)
            if m and (len(line) - len(line.lstrip())) <= 8:
                current = m.group(1)
                docs[current] = m.group(2).strip()
            elif current and line.strip():
                docs[current] += " " + line.strip()
            elif not line.strip() and current:
                current = None
    return docs


def _flag_kwargs(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return {"choices": choices, "type": type(choices[0])}
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _flag_kwargs(args[0])
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if tp in (int, float, str):
        return {"type": tp}
    return {"type": str}


def add_dataclass_flags(
    parser: argparse.ArgumentParser | Any, cls: type, *, skip: Sequence[str] = ()
) -> list[str]:
    """Add one ``--flag`` per field of dataclass ``cls`` (default ``None``: not given).

    Returns the field names added.
    """
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kwargs = _flag_kwargs(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = docs.get(f.name, "")
        kwargs["help"] = f"{help_text} (default: {default})".replace("%", "%%")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, **kwargs)
        names.append(f.name)
    return names


def given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The flags among ``names`` that were given on the command line (not ``None``)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


# ------------------------------------------------------------------ shared flags
def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def data_flags() -> argparse.ArgumentParser:
    """``--dataset``, ``--data-dir`` and ``--download``."""
    p = _parent()
    p.add_argument(
        "--dataset", required=True, help=f"one of {', '.join(list_datasets())}, or folder:PATH"
    )
    p.add_argument("--data-dir", default=None, help="folder to look for the dataset in first")
    p.add_argument(
        "--download",
        action="store_true",
        help="download the dataset with torchvision if not found (needs a network)",
    )
    return p


def no_progress_flag() -> argparse.ArgumentParser:
    """``--no-progress``."""
    p = _parent()
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def retain_eval_size_flag(default: int, help_text: str | None = None) -> argparse.ArgumentParser:
    """``--retain-eval-size`` with the command's ``default`` (and help, if it means more)."""
    p = _parent()
    p.add_argument(
        "--retain-eval-size",
        type=int,
        default=default,
        help=help_text
        or f"evaluate D_r on a seeded subset of this size (0: all; default {default})",
    )
    return p


def forget_epilog() -> str:
    """The forms ``--forget`` accepts, for a command's epilog (the Python-only form left out)."""
    lines = forget_spec_help().splitlines()
    return "\n".join(line for line in lines if "from Python" not in line)
