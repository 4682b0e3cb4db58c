"""Optuna's TPE inside Ray Tune, told what really happened to each trial.

Ray's `OptunaSearch` reports each result under Tune's iteration count and ends every
trial the scheduler stopped as COMPLETE, valued at its *last* report: a trial ASHA cut
after one epoch then looks to TPE like a finished trial worth its epoch-1 accuracy, next
to trials scored after twelve. Here, as in Optuna's own pruning:

- every epoch's value of the objective reaches the Optuna trial as an intermediate value
  at step = epoch (the same step after a restart from a checkpoint, never a duplicate);
- a trial that ended before `max_epochs` without an error is PRUNED (TPE ranks pruned
  trials by how far they got, then by their last value);
- a trial that trained to `max_epochs` is COMPLETE, valued at its best epoch: the figure
  the run folder ranks it by;
- a diverged trial is COMPLETE at 0 (accuracy, area), so TPE avoids its region; an error
  is FAIL.

A multi-objective search (two metrics) is told each COMPLETE trial's values at its best
epoch by the first metric; Optuna keeps no intermediate values for several objectives,
and a pruned trial counts for nothing there.

With a time budget, it proposes no trial that the remaining time cannot hold: a new
trial may train `max_epochs` epochs, each as long as the median epoch seen so far.

The searcher pickles whole with Tune's experiment state, so `--resume` continues it.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search import metrics as m
from search.budget import Deadline


class EpochOptunaSearch(OptunaSearch):
    def __init__(
        self,
        *args,
        objectives: list[tuple[str, str]],
        max_epochs: int,
        deadline: Deadline | None = None,
        **kwargs,
    ):
        """`objectives`: (metric, mode) pairs, the primary first (`metrics.objective_metrics`)."""
        metrics, modes = zip(*objectives, strict=True)
        single = len(objectives) == 1
        super().__init__(
            *args,
            metric=metrics[0] if single else list(metrics),
            mode=modes[0] if single else list(modes),
            **kwargs,
        )
        self.objectives = list(objectives)
        self.max_epochs = max_epochs
        self.deadline = deadline
        self._best: dict[str, dict] = {}  # trial id -> its best epoch's result so far
        self._last_epoch: dict[str, int] = {}  # trial id -> last epoch reported to Optuna
        self._epoch_seconds: list[float] = []  # every epoch's duration, for the budget

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.deadline is not None and self.deadline.remaining() < self.trial_cost():
            return Searcher.FINISHED  # running trials finish; no new one starts
        return super().suggest(trial_id)

    def trial_cost(self) -> float:
        """Seconds a new trial may take: `max_epochs` median epochs (0 before any epoch)."""
        if not self._epoch_seconds:
            return 0.0
        return self.max_epochs * statistics.median(self._epoch_seconds)

    def save(self, checkpoint_path: str) -> None:
        # The deadline is the same object as Tune's stopper (both in the Tuner's pickle);
        # leaving it out of this file keeps them one object after a restore.
        deadline, self.deadline = self.deadline, None
        try:
            super().save(checkpoint_path)
        finally:
            self.deadline = deadline

    def restore(self, checkpoint_path: str) -> None:
        deadline = self.deadline
        super().restore(checkpoint_path)
        self.deadline = deadline

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._completed_trials:
            self._record(trial_id, result)

    def _record(self, trial_id: str, result: dict) -> None:
        primary, mode = self.objectives[0]
        if m.EPOCH not in result or primary not in result:
            return
        epoch, value = int(result[m.EPOCH]), float(result[primary])
        if m.EPOCH_SECONDS in result:
            self._epoch_seconds.append(float(result[m.EPOCH_SECONDS]))
        best = self._best.get(trial_id)
        if best is None or (value > best[primary] if mode == "max" else value < best[primary]):
            self._best[trial_id] = {k: result.get(k) for k, _ in self.objectives}
        # A trial restored from a checkpoint repeats no epoch; one restarted from an
        # older checkpoint may: Optuna keeps the first value of a step, and so do we.
        if len(self.objectives) == 1 and epoch > self._last_epoch.get(trial_id, 0):
            self._ot_trials[trial_id].report(value, epoch)
            self._last_epoch[trial_id] = epoch

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials:
            return
        # Tune hands a trial's last result to this method only, not to on_trial_result.
        if result and not error:
            self._record(trial_id, result)
        result = result or {}
        if error:
            state, values = TrialState.FAIL, None
        elif result.get(m.DIVERGED):
            # The worst a maximised metric can be; a minimised one (size) as it is.
            values = [0.0 if mode == "max" else result.get(k) for k, mode in self.objectives]
            state = TrialState.COMPLETE
        elif int(result.get(m.EPOCH, 0)) >= self.max_epochs and trial_id in self._best:
            state = TrialState.COMPLETE
            values = [self._best[trial_id][k] for k, _ in self.objectives]
        elif int(result.get(m.EPOCH, 0)) >= self.max_epochs:
            state, values = TrialState.FAIL, None  # finished without a usable report
        else:
            # Stopped by the scheduler (or the search ended first): Optuna values a
            # pruned trial at its last intermediate value.
            state, values = TrialState.PRUNED, None
        if values is not None and any(v is None for v in values):
            state, values = TrialState.FAIL, None  # nothing to learn from
        if values is not None and len(values) == 1:
            values = values[0]
        self._ot_study.tell(self._ot_trials[trial_id], values, state=state)
        self._completed_trials.add(trial_id)


def tpe_sampler(seed: int) -> optuna.samplers.TPESampler:
    """TPE as this search runs it, with several trials training at once.

    `constant_liar` counts the running trials as bad results while proposing, so two
    concurrent proposals do not land on the same spot; `multivariate` models the
    parameters jointly (depth, width and batch size together set both the accuracy and the
    cost of a configuration).
    """
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)
