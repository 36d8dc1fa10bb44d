"""`python -m ssr_core.commands ...`: the `ssr` command line without the console script."""

import sys

from ssr_core.commands.main import main

if __name__ == "__main__":
    sys.exit(main())
