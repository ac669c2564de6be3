"""``amnesiac methods``: list the unlearning methods."""

from __future__ import annotations

import argparse
from typing import Any

import amnesiac
from amnesiac.cli.common import table


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``methods`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "methods", help="list the unlearning methods"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print one row per registered method."""
    rows = [
        [
            m.name,
            "+".join(m.reads) + "".join(f" (+{a})" for a in m.accepts),
            ", ".join(sorted(m.cls.presets)) or "-",
            m.summary,
        ]
        for m in amnesiac.list_methods()
    ]
    print(table(rows, ["method", "reads", "presets", "description"]))
    return 0
