"""`python -m search.run`: the command line of the search: flags, search, then report.

A thin layer over `search.api`, which is the same search from Python: this module turns
its exceptions into exit codes and one line on stderr, and runs the report. Flags are
parsed before torch and Ray are imported, so `--help` and a bad flag answer at once. The
report is its own program (`python -m analysis.report RUN`) reading only the run folder,
and runs as one here too: the search never imports the analysis, and a report that fails
leaves the run whole.
"""

from __future__ import annotations

import subprocess
import sys
import time

from search import api, tracking
from search.api import REPORT_COMMAND
from search.config import parse_args
from search.errors import UserError
from search.signals import sigterm_as_ctrl_c

EXIT_USER_ERROR = 2
EXIT_DISK = 74  # sysexits' EX_IOERR: the run folder's disk is full, read-only or gone
EXIT_INTERRUPTED = 130  # the shell's code for "ended by Ctrl-C"; also after SIGTERM


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    started = time.monotonic()
    sigterm_as_ctrl_c()
    try:
        run = api.search(config)
    except api.Interrupted as exc:
        print(f"search.run: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except api.DiskError as exc:  # a UserError with its own exit status
        print(f"search.run: {exc}", file=sys.stderr)
        return EXIT_DISK
    except UserError as exc:
        print(f"search.run: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not config.no_report:
        _report(run)
    print(f"Done in {time.monotonic() - started:.0f} s.", file=sys.stderr)
    return 0


def _report(run: api.Run) -> None:
    """Write the run's report, when the run folder is on this machine's disk."""
    if not run.local:
        print(
            f"Report: copy {run.location} to a local folder, then run python -m "
            "analysis.report FOLDER",
            file=sys.stderr,
        )
        return
    # Unlike `api.Run.report`, the report's stderr goes straight to the terminal.
    done = subprocess.run(
        [sys.executable, *REPORT_COMMAND, run.location], stdout=subprocess.PIPE, text=True
    )
    # The report prints its index page. A report the run cannot have (e.g. no trial
    # finished) has said why in one line on stderr; anything else is a bug in the report,
    # whose traceback is above, and the run folder is whole either way.
    if done.returncode == 0:
        print(f"Report: {done.stdout.strip()}")
        tracking.add_report(run.path)
    elif done.returncode != EXIT_USER_ERROR:
        print("search.run: the report failed; the run folder is whole", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
