"""`python -m search.run`: the command line of the search: flags, search, then report.

Flags are parsed before torch and Ray are imported, so `--help` and a bad flag answer at
once; the search itself lives in `search.driver`. The report is its own program
(`python -m analysis.report RUN`) reading only the run folder, and runs as one here too:
the search never imports the analysis, and a report that fails leaves the run whole.
"""

from __future__ import annotations

import subprocess
import sys
import time

from search.config import parse_args
from search.errors import UserError
from search.signals import sigterm_as_ctrl_c

EXIT_USER_ERROR = 2
EXIT_DISK = 74  # sysexits' EX_IOERR: the run folder's disk is full, read-only or gone
EXIT_INTERRUPTED = 130  # the shell's code for "ended by Ctrl-C"; also after SIGTERM
REPORT_COMMAND = ("-m", "analysis.report")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    started = time.monotonic()
    sigterm_as_ctrl_c()
    try:
        from search import driver  # torch and Ray: a few seconds
    except KeyboardInterrupt:
        print("search.run: interrupted; the search had not started", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        run_dir = driver.run(config)
    except UserError as exc:
        print(f"search.run: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (driver.Interrupted, KeyboardInterrupt):
        print(f"search.run: {driver.interrupted_message(config)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from search.faults import disk_fault_cause

        if (cause := disk_fault_cause(exc)) is None:
            raise  # our bug: its traceback
        print(f"search.run: {driver.disk_fault_message(config, cause)}", file=sys.stderr)
        return EXIT_DISK
    if not config.no_report:
        _report(run_dir.path if run_dir.is_local else None, run_dir.display)
    print(f"Done in {time.monotonic() - started:.0f} s.", file=sys.stderr)
    return 0


def _report(local_path: str | None, display: str) -> None:
    """Write the run's report, when the run folder is on this machine's disk."""
    if local_path is None:
        print(
            f"Report: copy {display} to a local folder, then run python -m analysis.report FOLDER",
            file=sys.stderr,
        )
        return
    done = subprocess.run(
        [sys.executable, *REPORT_COMMAND, local_path], stdout=subprocess.PIPE, text=True
    )
    # The report prints its index page. A report the run cannot have (e.g. no trial
    # finished) has said why in one line on stderr; anything else is a bug in the report,
    # whose traceback is above, and the run folder is whole either way.
    if done.returncode == 0:
        print(f"Report: {done.stdout.strip()}")
    elif done.returncode != EXIT_USER_ERROR:
        print("search.run: the report failed; the run folder is whole", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
