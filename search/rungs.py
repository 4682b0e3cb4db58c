"""The rule that stops poor trials early: asynchronous successive halving (ASHA).

A trial is judged each time it first passes a rung (at grace, grace·rf, grace·rf², ...
below the cap, in epochs or in units of training time): it goes on only if its value is
at least the (1 - 1/rf) quantile of the values recorded at that rung so far, so about
the best 1/rf of the trials climb to the next rung. Nobody waits for a rung to fill.

This is the rule of Ray's `ASHAScheduler` with one bracket, written here because a warm
start records earlier trials' values on the rungs before the search starts
(`Rungs.judge` under their own ids), which Ray's scheduler has no public way to take.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


@dataclass
class Rungs:
    milestones: list[float]  # ascending
    reduction_factor: float
    # milestone -> {trial id: its value there, higher is better}
    recorded: dict[float, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def spaced(cls, grace: float, cap: float, reduction_factor: float) -> Rungs:
        """Rungs at grace·rf^k below `cap` (a trial at the cap ends anyway)."""
        milestones, at = [], grace
        while at < cap * (1 - 1e-9):
            milestones.append(at)
            at *= reduction_factor
        return cls(milestones, reduction_factor, {t: {} for t in milestones})

    def cutoff(self, milestone: float) -> float | None:
        values = list(self.recorded[milestone].values())
        return (
            float(np.nanpercentile(values, (1 - 1 / self.reduction_factor) * 100))
            if values
            else None
        )

    def judge(self, trial_id: str, time: float, value: float) -> bool:
        """Records `value` at the highest rung `trial_id` has passed and not yet been
        judged at; False when it falls below the rung's cutoff (the trial stops)."""
        for milestone in reversed(self.milestones):
            recorded = self.recorded[milestone]
            if time < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(milestone)
            recorded[trial_id] = value
            return cutoff is None or value >= cutoff
        return True


class RungScheduler(FIFOScheduler):
    """A Tune scheduler that stops trials by `Rungs` on `time_attr` (epochs or training
    seconds); every trial ends at `max_t`. Its metric and mode come from `TuneConfig`."""

    def __init__(self, time_attr: str, max_t: float, grace: float, reduction_factor: float):
        super().__init__()
        self.time_attr = time_attr
        self.max_t = max_t
        self.rungs = Rungs.spaced(grace, max_t, reduction_factor)
        self.sign = 1.0  # -1 where the metric is minimised: rungs keep higher-is-better

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        self.sign = -1.0 if mode == "min" else 1.0
        return super().set_search_properties(metric, mode, **spec)  # sets `self.metric`

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self.time_attr not in result or self.metric not in result:
            return TrialScheduler.CONTINUE
        if result[self.time_attr] >= self.max_t:
            return TrialScheduler.STOP
        keeps = self.rungs.judge(
            trial.trial_id, result[self.time_attr], self.sign * result[self.metric]
        )
        return TrialScheduler.CONTINUE if keeps else TrialScheduler.STOP

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        # A trial's last result reaches this method only: its rung still counts it.
        if self.time_attr in result and self.metric in result:
            self.rungs.judge(
                trial.trial_id, result[self.time_attr], self.sign * result[self.metric]
            )

    def debug_string(self) -> str:
        return "Rungs: " + " | ".join(
            f"{t:g}: {self.rungs.cutoff(t)}" for t in self.rungs.milestones
        )
