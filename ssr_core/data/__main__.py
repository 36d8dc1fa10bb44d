"""`python -m ssr_core.data synth|convert|build ...`: the `ssr data` commands without the console script."""

import argparse
import sys

from ssr_core.cli import run_parser
from ssr_core.data.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssr_core.data", description="SSR data engine")
    parser.set_defaults(prog=parser.prog)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run_parser(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
