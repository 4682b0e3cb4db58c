"""A search from Python, with the flags as keyword arguments, and a handle on its run folder:

    from search.api import run
    result = run(dataset="ucr:GunPoint", trials=20, time_budget="10m")
    result.trials                 # one row per trial (trials.csv), as a DataFrame
    result.best.predict(X)        # the winner, as `load_best` reads it
    result.report()               # runs/<name>/report/index.html

`python -m search.run` is a thin layer over `search` below: it adds exit codes, one-line
messages and the report as a program of its own. Here failures are exceptions instead:
UserError (a bad flag, missing data, ...), DiskError, and Interrupted on Ctrl-C. Flags are
checked by the command line's own parser, so a value it refuses is refused here too.
Importing this module imports neither torch nor Ray.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import tracking
from search.config import SearchConfig, flag_words, parse_args
from search.errors import UserError
from search.run_record import RunRecord

if TYPE_CHECKING:  # torch and pandas: imported when a handle reads them
    import pandas as pd

    from models.classifier import Classifier

log = logging.getLogger(__name__)

REPORT_COMMAND = ("-m", "analysis.report")  # the report is a program of its own
REPORT_INDEX = "index.html"  # the page analysis.report writes into the run's report/
_REPORT_REFUSED = 2  # analysis.report's status for a folder it cannot report on
_REFUSAL = re.compile(r".*?: error: (.*?)(?: \(see --help\))?")  # "PROG: error: MSG (see --help)"
_FIELDS = fields(SearchConfig)

__all__ = ["DiskError", "Interrupted", "Run", "SearchConfig", "configure", "run", "search"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the search; its message says what was saved.

    A KeyboardInterrupt, so that a notebook's `except Exception` does not swallow it.
    `resume_command` continues the search from a shell (None when nothing was saved);
    `run(name=..., storage_path=..., resume=True)` continues it from Python.
    """

    def __init__(self, message: str, resume_command: str | None = None) -> None:
        super().__init__(message)
        self.resume_command = resume_command


class DiskError(UserError):
    """The run folder's disk is full, read-only or gone; its message says what was kept.
    `resume_command` continues the search once that is fixed (None when nothing was
    saved)."""

    def __init__(self, message: str, resume_command: str | None = None) -> None:
        super().__init__(message)
        self.resume_command = resume_command


def configure(config: SearchConfig | None = None, /, **flags: Any) -> SearchConfig:
    """The SearchConfig `python -m search.run` builds from the same flags (`trials=20`
    for `--trials 20`, `download=True` for `--download`), or `config` checked as those
    flags are. A value the command line refuses raises UserError with its message."""
    if config is not None and flags:
        raise TypeError("give a SearchConfig or flags, not both")
    values = flags if config is None else {f.name: getattr(config, f.name) for f in _FIELDS}
    argv = flag_words(values)
    # The command line's own parsing, checks after argparse's included (a --space file),
    # so that nothing it refuses passes here. It answers a bad flag with one line on
    # stderr and SystemExit; that line becomes the UserError.
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parse_args(argv)
    except SystemExit:
        line = said.getvalue().strip()
        refusal = _REFUSAL.fullmatch(line)
        raise UserError(refusal.group(1) if refusal else line) from None


def search(config: SearchConfig) -> Run:
    """Run (or resume, with `resume=True`) the search `config` describes, without its
    report; returns its run folder.

    Raises UserError for what the user can fix, DiskError when the run folder's disk
    failed, and Interrupted on Ctrl-C; anything else is a bug and keeps its traceback.
    """
    return _search(configure(config))


def _search(config: SearchConfig) -> Run:
    """`search`, for a config `configure` has checked."""
    with _environment_restored():
        location = _driver_run(config)
    if location.is_local:
        return Run(location.path)
    return Run(location.display, local=False)


def _driver_run(config: SearchConfig):
    try:
        from search import driver  # torch and Ray: a few seconds
    except KeyboardInterrupt:
        raise Interrupted("interrupted; the search had not started") from None
    try:
        return driver.run(config)
    except UserError:
        raise
    except (driver.Interrupted, KeyboardInterrupt):
        raise Interrupted(*driver.interrupted_message(config)) from None
    except Exception as exc:
        from search.faults import disk_fault_cause

        if (cause := disk_fault_cause(exc)) is None:
            raise  # our bug: its traceback
        raise DiskError(*driver.disk_fault_message(config, cause)) from None


@contextlib.contextmanager
def _environment_restored():
    """The driver quiets Ray, Tune and their loggers through environment variables; a
    notebook's environment, and the processes it starts afterwards, keep their own."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(config: SearchConfig | None = None, /, **flags: Any) -> Run:
    """Search as `python -m search.run` does with the same flags, report included (unless
    `no_report=True`); returns the run folder. Give a SearchConfig or flags.

    A report that cannot be built is logged, not raised: the run folder is whole, and
    `Run.report()` says why. Raises as `search` does.
    """
    config = configure(config, **flags)
    result = _search(config)
    if not config.no_report and result.local:
        try:
            result.report()
        except (UserError, RuntimeError) as exc:
            log.warning("no report of %s: %s", result.location, exc)
        else:
            tracking.add_report(result.path)
    return result


@dataclass(frozen=True)
class Run:
    """A run folder, read through the run folder's contract (`search.run_folder`).

    Every property reads the folder when asked, so a handle on a folder whose search is
    resumed sees its latest state.
    """

    location: str  # the run folder: a path on this machine, or an object store's URI
    local: bool = True

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run folder at `path`; UserError if it is not one this version reads."""
        found = cls(str(Path(path).expanduser().absolute()))
        # Read now, so that a folder that is not a run is refused here, not at first use.
        found.record  # noqa: B018
        return found

    @property
    def path(self) -> Path:
        if not self.local:
            raise UserError(
                f"{self.location} is in an object store: copy it to a folder here, then "
                "Run.open(FOLDER)"
            )
        return Path(self.location)

    @property
    def record(self) -> RunRecord:
        """run.json: the data, space, flags, packages and timings of the search."""
        try:
            return RunRecord.read(self.path)
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a run folder: it has no run.json") from None

    @property
    def trials(self) -> pd.DataFrame:
        """trials.csv: one row per trial (its outcome, hyperparameters and figures)."""
        from search.run_folder import TRIALS_CSV, read_trials

        table = self.path / TRIALS_CSV
        if not table.exists():
            raise UserError(f"{self.path} has no {TRIALS_CSV}: its search has not ended")
        return read_trials(table)

    @property
    def best(self) -> Classifier:
        """The winner, ready to classify raw series: `.predict(X)`, `.predict_early(X)`."""
        from search.run_folder import load_best

        self._winner_file()
        return load_best(self.path)

    @property
    def best_config(self) -> dict:
        """best/config.json: the winner's hyperparameters, classes, stopping rule, figures."""
        return json.loads(self._winner_file().read_text())

    def _winner_file(self) -> Path:
        from search.run_folder import BEST_CONFIG

        about = self.path / BEST_CONFIG
        if not about.exists():
            raise UserError(
                f"{self.path} has no winner ({BEST_CONFIG}): no trial finished an epoch, or "
                "the search was stopped before choosing one"
            )
        return about

    def report(self, top_k: int | None = None) -> Path:
        """The report's index.html, built first (`python -m analysis.report`, in a process
        of its own) when there is none yet, or when `top_k` asks for another."""
        from search.run_folder import REPORT_DIR

        index = self.path / REPORT_DIR / REPORT_INDEX
        if index.exists() and top_k is None:  # a report appears whole or not at all
            return index
        command = [sys.executable, *REPORT_COMMAND, str(self.path)]
        if top_k is not None:
            command += ["--top-k", str(top_k)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == _REPORT_REFUSED:  # its one line says why
            lines = done.stderr.strip().splitlines() or ["the report refused the folder"]
            raise UserError(lines[-1].removeprefix("analysis.report: error: "))
        if done.returncode != 0:  # a bug in the report: its traceback
            raise RuntimeError(
                f"the report of {self.path} failed; the run folder is whole:\n{done.stderr}"
            )
        return Path(done.stdout.strip())
