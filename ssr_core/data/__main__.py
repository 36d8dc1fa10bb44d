"""`python -m ssr_core.data synth|convert|build ...`: the `ssr data` commands without the console script."""

import argparse
import sys

from ssr_core.cli import CliError
from ssr_core.data.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssr_core.data", description="SSR data engine")
    parser.set_defaults(prog=parser.prog)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"{args.prog}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
