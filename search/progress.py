"""A one-line live progress display that replaces Ray Tune's verbose tables.

Counts are derived from Tune's trial list at every step rather than tallied from events,
so they stay right after a restore.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ray import tune
from ray.tune.experiment import Trial

from search import metrics as m
from search.faults import latest_error, memory_kill
from search.run_folder import TrialStatus, trial_status


class ProgressLine(tune.Callback):
    """`[mm:ss] 23/50 done (15 stopped early, 0 failed) | 2 running | best val_acc 0.962`.

    On a cluster whose autoscaler adds nodes, "2 running, 4 waiting for nodes".

    On a terminal the line is redrawn in place; elsewhere (CI, logs) a line is printed
    every `log_every_s` seconds and whenever a trial finishes.
    """

    cluster_grows = False  # the default for a progress line pickled before it existed

    def __init__(
        self,
        total: int,
        max_epochs: int,
        stream: TextIO | None = None,
        log_every_s: float = 30.0,
        metric: str = m.VAL_ACC,
        cluster_grows: bool = False,
    ) -> None:
        self.total = total
        # With an autoscaler, trials that wait are waiting for the nodes it starts.
        self.cluster_grows = cluster_grows
        self.max_epochs = max_epochs
        self.metric = metric  # the search's primary objective (maximised), shown as "best"
        self._stream = stream
        self.log_every_s = log_every_s
        self.setup()

    def setup(self, **info) -> None:
        # Called by Tune when a search starts or resumes: the clock is this session's.
        self.started = time.monotonic()
        self._last_print = 0.0
        self._last_done = -1
        self._width = 0

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks with the experiment; a stream is not state.
        return {**self.__dict__, "_stream": None}

    def status(self, trial: Trial) -> TrialStatus:
        """The outcome trials.csv will record for `trial`, as far as it is known now."""
        return trial_status(
            failed=trial.status == Trial.ERROR,
            diverged=bool(trial.last_result.get(m.DIVERGED, False)),
            epochs=int(trial.last_result.get(m.EPOCH, 0)),
            max_epochs=self.max_epochs,
            ended=trial.status == Trial.TERMINATED,
        )

    def summary(self, trials: list[Trial]) -> str:
        finished = [t for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)]
        statuses = [self.status(t) for t in trials]
        stopped = statuses.count(TrialStatus.STOPPED)
        diverged = statuses.count(TrialStatus.DIVERGED)
        failed = statuses.count(TrialStatus.FAILED)
        running = sum(t.status == Trial.RUNNING for t in trials)
        pending = sum(t.status == Trial.PENDING for t in trials)
        best = max(
            (
                t.metric_analysis[self.metric]["max"]
                for t in trials
                if self.metric in t.metric_analysis
            ),
            default=None,
        )
        elapsed = int(time.monotonic() - self.started)
        parts = [
            f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {len(finished)}/{self.total} done "
            f"({stopped} stopped early, {diverged} diverged, {failed} failed)",
            f"{running} running"
            + (f", {pending} waiting for nodes" if self.cluster_grows and pending else ""),
            f"best {self.metric} " + ("-" if best is None else f"{best:.4f}"),
        ]
        return " | ".join(parts)

    def _print(self, trials: list[Trial], force: bool = False) -> None:
        now = time.monotonic()
        finished = sum(t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)
        interactive = self.stream.isatty()
        due = now - self._last_print >= (1.0 if interactive else self.log_every_s)
        if not (force or due or finished != self._last_done):
            return
        line = self.summary(trials)
        if interactive:
            # Pad to erase the tail of a longer previous line.
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_print, self._last_done = now, finished

    def on_step_end(self, iteration: int, trials: list[Trial], **info) -> None:
        self._print(trials)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._note(
            f"trial {trial.trial_id} failed ({_last_line(trial)}); retrying from its "
            "last checkpoint"
        )

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._note(
            f"trial {trial.trial_id} failed for good: {_last_line(trial)} "
            f"(traceback in {trial.error_file})"
        )

    def _note(self, message: str) -> None:
        # On a terminal, start on a fresh line so the note does not overwrite progress.
        prefix = "\n" if self.stream.isatty() and self._width else ""
        self.stream.write(f"{prefix}{message}\n")
        self.stream.flush()
        self._width = 0

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self._print(trials, force=True)
        if self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()


def _last_line(trial: Trial) -> str:
    """The exception line of a failed trial's error, e.g. `ValueError: bad value`, or
    `out of memory: 430 MB` for a trial Ray killed to save its node's memory."""
    error = latest_error(trial)
    if reason := memory_kill(error):
        return reason
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
