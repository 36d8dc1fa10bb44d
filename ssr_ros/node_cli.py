"""Command lines of the nodes' executables: `--help`, and one-line errors instead of tracebacks.

ROS arguments (`--ros-args -p name:=value --params-file FILE -r from:=to`) go to rclpy unchanged;
everything else is checked here first, so `ssr_node --help` prints usage instead of starting a node.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from rclpy.utilities import remove_ros_args

ROS_ARGS_HELP = ("ROS arguments follow --ros-args: -p NAME:=VALUE (a parameter), --params-file FILE, "
                 "-r FROM:=TO (remap a topic), --log-level LEVEL.")


class NodeArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 1 (the project's CLI convention)."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see --help)")


def fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(1)


def parameter_table(params: Sequence[tuple[str, object, str]]) -> str:
    """'name (default): description' lines for --help."""
    return "\n".join(f"  {name} (default {default!r}): {text}" for name, default, text in params)


def check_command_line(prog: str, description: str, params: Sequence[tuple[str, object, str]],
                       args: Sequence[str] | None) -> list[str]:
    """Handle --help and non-ROS arguments; the full argument list for rclpy.init."""
    argv = list(sys.argv if args is None else args)
    parser = NodeArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{prog} [-h] [--ros-args ...]",
        epilog=f"{ROS_ARGS_HELP}\n\nparameters:\n{parameter_table(params)}")
    try:
        other_args = remove_ros_args(argv)[1:]
    except RuntimeError as exc:  # rclpy's RCLInvalidROSArgsError: malformed --ros-args
        fail(prog, f"bad ROS arguments: {str(exc).split(', at ')[0]}")
    parser.parse_args(other_args)
    return argv
