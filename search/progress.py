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


class ProgressLine(tune.Callback):
    """`[mm:ss] 23/50 done (15 stopped early, 0 failed) | 2 running | best val_acc 0.962`.

    On a terminal the line is redrawn in place; elsewhere (CI, logs) a line is printed
    every `log_every_s` seconds and whenever a trial finishes.
    """

    def __init__(
        self,
        total: int,
        max_epochs: int,
        stream: TextIO = sys.stderr,
        log_every_s: float = 30.0,
        started: float | None = None,
    ) -> None:
        self.total = total
        self.max_epochs = max_epochs
        self.stream = stream
        self.interactive = stream.isatty()
        self.log_every_s = log_every_s
        self.started = time.monotonic() if started is None else started
        self._last_print = 0.0
        self._last_finished = -1
        self._width = 0

    def summary(self, trials: list[Trial]) -> str:
        finished = [t for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)]
        failed = sum(t.status == Trial.ERROR for t in trials)
        stopped = sum(
            t.status == Trial.TERMINATED
            and not t.last_result.get(m.DIVERGED, False)
            and t.last_result.get(m.EPOCH, 0) < self.max_epochs
            for t in trials
        )
        diverged = sum(bool(t.last_result.get(m.DIVERGED, False)) for t in trials)
        running = sum(t.status == Trial.RUNNING for t in trials)
        best = max(
            (
                t.metric_analysis[m.VAL_ACC]["max"]
                for t in trials
                if m.VAL_ACC in t.metric_analysis
            ),
            default=None,
        )
        elapsed = int(time.monotonic() - self.started)
        parts = [
            f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {len(finished)}/{self.total} done "
            f"({stopped} stopped early, {diverged} diverged, {failed} failed)",
            f"{running} running",
            "best val_acc " + ("-" if best is None else f"{best:.4f}"),
        ]
        return " | ".join(parts)

    def _print(self, trials: list[Trial], force: bool = False) -> None:
        now = time.monotonic()
        finished = sum(t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)
        due = now - self._last_print >= (1.0 if self.interactive else self.log_every_s)
        if not (force or due or finished != self._last_finished):
            return
        line = self.summary(trials)
        if self.interactive:
            # Pad to erase the tail of a longer previous line.
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_print, self._last_finished = now, finished

    def on_step_end(self, iteration: int, trials: list[Trial], **info) -> None:
        self._print(trials)

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self._print(trials, force=True)
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
