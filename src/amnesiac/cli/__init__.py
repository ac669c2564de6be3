"""The ``amnesiac`` command line: a thin skin over the public API, and the only place that prints.

One module per command, each with ``add_parser(subparsers)`` and ``run(args)`` (``run(args,
extra)`` for the commands that take a method's settings as extra flags, generated from its
settings dataclass by :mod:`amnesiac.cli.flags`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import amnesiac
from amnesiac import distributed
from amnesiac._io import OutputPathError
from amnesiac.cli import (
    attach_anchors,
    audit,
    bench,
    continual,
    evaluate,
    methods,
    pretrain,
    report,
    unlearn,
    verify,
)
from amnesiac.cli.common import PROG, CLIError
from amnesiac.cli.flags import add_dataclass_flags
from amnesiac.errors import AmnesiacError

__all__ = ["PROG", "CLIError", "add_dataclass_flags", "build_parser", "main"]

_COMMANDS = (
    methods,
    pretrain,
    attach_anchors,
    unlearn,
    continual,
    verify,
    evaluate,
    audit,
    report,
    bench,
)


def _build() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser, and its ``unlearn`` subparser (whose help lists the chosen method's settings)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make a trained image classifier forget specific training instances.",
    )
    parser.add_argument("--version", action="version", version=f"amnesiac {amnesiac.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    added = {command.__name__: command.add_parser(sub) for command in _COMMANDS}
    return parser, added[unlearn.__name__]


def build_parser() -> argparse.ArgumentParser:
    """The ``amnesiac`` argument parser (method settings are parsed by the command)."""
    return _build()[0]


#: The commands that run in several processes under torchrun (the rest run in one).
DISTRIBUTED_COMMANDS = ("pretrain", "unlearn", "audit", "bench")


@contextlib.contextmanager
def _processes(args: argparse.Namespace) -> Iterator[None]:
    """Under torchrun: join the process group for the command, and let rank 0 alone print
    and show progress (the commands write files on rank 0 only). Nothing in one process."""
    if not distributed.launched():
        yield
        return
    if args.command not in DISTRIBUTED_COMMANDS:
        raise CLIError(
            f"`{PROG} {args.command}` runs in one process; under torchrun only "
            f"{', '.join(DISTRIBUTED_COMMANDS)} run (start it without torchrun)"
        )
    distributed.init()
    try:
        if distributed.is_main():
            yield
            return
        if hasattr(args, "no_progress"):
            args.no_progress = True
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            yield
    finally:
        distributed.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or a failed request)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, unlearn_parser = _build()
    try:
        if argv[:1] == ["unlearn"] and ("-h" in argv or "--help" in argv):
            unlearn.add_method_help(unlearn_parser, argv)
        args, extra = parser.parse_known_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        if args.command is None:
            parser.print_help()
            return 2
        takes_extra = getattr(args, "takes_extra", False)
        if extra and not takes_extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        with _processes(args):
            code: int = args.func(args, extra) if takes_extra else args.func(args)
        return code
    except (AmnesiacError, OutputPathError) as e:
        where = f" (rank {distributed.rank()})" if distributed.launched() else ""
        print(f"{PROG}: error{where}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        return int(e.code) if isinstance(e.code, int) else 2
