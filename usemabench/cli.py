"""`usemabench <command>`: one console command; each command group registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from usemabench.core.threads import configure_threads
from usemabench.datasets.errors import DatasetError
from usemabench.hub import PretrainedError
from usemabench.core.schema import RecordError
from usemabench.runners.checkpoint import CheckpointError
from usemabench.runners.errors import UsageError
from usemabench.runners.protocol import ProtocolError
from usemabench.zoo.registry import import_model_module

# Each module defines `register(subparsers)`, adding parsers whose `handler(args) -> int` runs the command.
COMMAND_MODULES = (
    "usemabench.zoo.commands",
    "usemabench.datasets.commands",
    "usemabench.runners.commands",
    "usemabench.profiler.commands",
    "usemabench.leaderboard.commands",
    "usemabench.hub_commands",
    "usemabench.weights_commands",
)


# Bad input, told in one line: the project's own errors, a missing package, a file that could not be read or
# written (OSError: missing, no permission, a full disk; its message names the path), and a bare ValueError, which
# the model zoo (configs, registry) and the leaderboard still raise for bad input. Anything else (a KeyError, a
# RuntimeError from torch, a TypeError) is a bug and keeps its traceback.
USER_ERRORS = (
    DatasetError, ProtocolError, PretrainedError, RecordError, CheckpointError, UsageError, ValueError,
    ImportError, OSError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usemabench",
        description="Benchmark and model zoo for 2D medical image segmentation around USEMA.",
    )
    parser.add_argument(
        "--model-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module of yours that registers models with @register_model: a module name (found in the "
        "current folder too) or a path to a .py file (repeatable)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None:  # started as the `usemabench` command: this process is ours to size; a caller of main([...]) keeps its own
        configure_threads()
    try:
        for module_name in args.model_module:
            import_model_module(module_name)
        return int(args.handler(args) or 0)
    except USER_ERRORS as error:
        print(f"usemabench {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line (a run's says where it resumes), the shell's code 130
        print(f"usemabench {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
