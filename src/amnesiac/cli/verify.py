"""``amnesiac verify``: check a deletion ledger."""

from __future__ import annotations

import argparse
from typing import Any

from amnesiac.data import load_dataset
from amnesiac.ledger import Ledger


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``verify`` command to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify", help="check a deletion ledger: hashes, chain, models, D_f accuracy"
    )
    p.add_argument("ledger", help="ledger file (JSON lines)")
    p.add_argument("--data-dir", default=None, help="where the datasets are (as for unlearn)")
    p.add_argument(
        "--no-accuracy", action="store_true", help="skip reloading data to recheck D_f accuracy"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Verify the ledger (see :meth:`amnesiac.ledger.Ledger.verify`); it raises on a problem."""
    checked = Ledger(args.ledger).verify(
        load_data=lambda name: load_dataset(name, args.data_dir, download=False),
        check_accuracy=not args.no_accuracy,
    )
    print(
        f"ledger {args.ledger} OK: {checked.entries} entries, hash chain intact, every model "
        f"present and matching; D_f accuracy rechecked for {checked.accuracy_checked}"
    )
    return 0
