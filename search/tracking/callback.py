"""The trials' side of tracking: a Tune callback, in the driver's process, that hands
each trial's start, epochs and end to the trackers (`search.tracking`), on their own
thread (`Trackers.later`): Tune's loop does not wait for a tracker's requests.

Tune pickles its callbacks with the experiment's state and restores them on `--resume`,
so the trackers come back with the search; each finds its records again on first use.
"""

from __future__ import annotations

from ray import tune
from ray.tune.experiment import Trial

from search import metrics as m
from search.run_folder import trial_dir, trial_status
from search.tracking import Trackers, epoch_figures, hyperparameters


class TrackingCallback(tune.Callback):
    def __init__(self, trackers: Trackers, max_epochs: int) -> None:
        self.trackers = trackers
        self.max_epochs = max_epochs

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        # Also when a trial resumes from its checkpoint (after a retry or a --resume).
        config = hyperparameters(trial.config)
        self.trackers.later("trial_started", trial.trial_id, trial_dir(trial.trial_id), config)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info
    ) -> None:
        if m.EPOCH in result:
            figures = epoch_figures(result)
            self.trackers.later("epoch", trial.trial_id, int(result[m.EPOCH]), figures)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        self._ended(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        self._ended(trial, failed=True)  # after its last retry (before: on_trial_recover)

    def _ended(self, trial: Trial, failed: bool) -> None:
        # Called before Tune sets the trial's own status: the outcome is said here.
        last = trial.last_result or {}
        outcome = trial_status(
            failed=failed,
            diverged=bool(last.get(m.DIVERGED, False)),
            epochs=int(last.get(m.EPOCH, 0)),
            max_epochs=self.max_epochs,
            ended=True,
        )
        self.trackers.later("trial_ended", trial.trial_id, str(outcome), epoch_figures(last))

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self.trackers.call("close")  # after the calls still queued
