"""What every `ssr` command shares: subcommand registration and the one error path.

Handlers take the parsed `argparse.Namespace` and return the exit code. Bad user input raises
`CliError` here or a documented `ssr_core.errors.InputError` in the library; `run_parser` prints
either as one line on stderr and returns 1, instead of a traceback (exit statuses: docs/CLI.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from ssr_core.errors import InputError, run_entry_point

Subparsers = Any  # argparse's private _SubParsersAction; only `add_parser` is used
Handler = Callable[[argparse.Namespace], int]
Builder = Callable[[Subparsers], object]  # what it returns (e.g. its parser) is ignored


class CliError(InputError):
    """Bad command-line input: reported as `<prog>: error: <message>` on stderr, exit status 1."""


def add_command(subparsers: Subparsers, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    """Add subcommand `name`, run by `handler(args) -> exit code`; returns its parser for arguments."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(func=handler, prog=parser.prog)
    return parser


def add_group(subparsers: Subparsers, name: str, help: str) -> Subparsers:
    """Add a subcommand that only holds subcommands (`ssr eval ...`); returns their subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def run_parser(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse and run the chosen handler through `ssr_core.errors.run_entry_point`: bad input
    (`InputError`, `OSError`) is one stderr line and exit status 1, a model failure 3, Ctrl-C 130,
    a closed stdout pipe a quiet exit; anything else is a bug and keeps its traceback."""
    args = parser.parse_args(argv)
    return run_entry_point(args.prog, lambda: args.func(args))


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The model arguments `ssr_core.commands.evaluate.load_checkpoint_generator` reads (besides each command's own --batch-size)."""
    parser.add_argument("--checkpoint", required=required,
                        help="model directory: an SSR checkpoint, or with --model-kind base a downloaded base model")
    parser.add_argument("--model-kind", default="ssr", choices=("ssr", "base"),
                        help="ssr = trained SSR checkpoint; base = plain Qwen2.5-VL / Qwen3-VL instruct folder, run zero-shot "
                             "with the SSR-2D prompts (default %(default)s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "npu", "cpu"))
    parser.add_argument("--vggt-path", help="VGGT aggregator weights for SSR-3D (default: from the checkpoint)")
