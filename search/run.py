"""`python -m search.run`: the command line of the search.

Flags are parsed before torch and Ray are imported, so `--help` and a bad flag answer at
once; the search itself lives in `search.driver`.
"""

from __future__ import annotations

import sys

from search.config import parse_args
from search.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for "ended by Ctrl-C"


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        from search import driver  # torch and Ray: a few seconds
    except KeyboardInterrupt:
        print("search.run: interrupted; the search had not started", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        return driver.run(config)
    except UserError as exc:
        print(f"search.run: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (driver.Interrupted, KeyboardInterrupt):
        print(f"search.run: {driver.interrupted_message(config)}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
