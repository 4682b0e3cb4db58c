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

It drives the study through Optuna's ask-and-tell interface: `study.ask` proposes,
`Trial.report` records an epoch, `study.tell` ends a trial. The study lives in storage
(`search.study`): the searcher's saved state keeps which Tune trial is which study trial
(by number), not the study, and a restored searcher reconnects to the
storage the driver names (`reconnect_study_to`), so `--resume` continues the same study.
A restore also squares the study with the saved state, which may be a few seconds older:
trials the study finished since are not told again, and trials asked since (never given
to a Tune trial) go to the next trials Tune starts, instead of staying RUNNING.
"""

from __future__ import annotations

import pickle
import statistics

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search import metrics as m
from search import study as st
from search.budget import Deadline
from search.space import SearchSpace

# The study URL a restored searcher connects to. It is not in the searcher's saved state,
# which must hold no password, and the run folder (with the default SQLite study) may
# have moved since; the driver sets it before Tune restores the searcher.
_restore_url: str | None = None


def reconnect_study_to(url: str) -> None:
    """Restored searchers of this process connect to the study at `url`."""
    global _restore_url
    _restore_url = url


_ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # told, never again


class EpochOptunaSearch(Searcher):
    """A Tune `Searcher` that drives an Optuna study through ask and tell.

    Each Tune trial is one study trial, known by its number (`numbers`); `study.ask`
    proposes, `Trial.report` records an epoch, `study.tell` ends it.
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: list[tuple[str, str]],
        sampler: optuna.samplers.BaseSampler,
        max_epochs: int,
        unit_seconds: float | None = None,
        deadline: Deadline | None = None,
        study: st.StudyRef | None = None,
        run: str = "",
        points_to_evaluate: list[dict] | None = None,
    ):
        """`objectives`: (metric, mode) pairs, the primary first (`metrics.objective_metrics`).
        `study`: where the study is kept (default: in memory, for tests); `run`: the run's
        name, recorded on each of its trials; `unit_seconds`: ASHA's unit under
        --asha-time seconds, in which each trial's cost per epoch is recorded."""
        metrics, modes = zip(*objectives, strict=True)
        single = len(objectives) == 1
        super().__init__(
            metric=metrics[0] if single else list(metrics),
            mode=modes[0] if single else list(modes),
        )
        self.space = space
        self.sampler = sampler
        self.objectives = list(objectives)
        self.study_name = study.name if study else "in-memory"
        self.study_url = study.display if study else None  # no password in saved state
        if study is None:
            self._storage = optuna.storages.InMemoryStorage()
            self.study = optuna.create_study(
                storage=self._storage,
                study_name=self.study_name,
                sampler=sampler,
                directions=["maximize" if mode == "max" else "minimize" for mode in modes],
            )
            self._trials: dict[str, optuna.Trial] = {}
        else:
            self._connect(study.url)  # prepared by the caller (`study.prepare`)
        # A shared or warm-started study may hold these points already: not twice.
        for point in points_to_evaluate or []:
            self.study.enqueue_trial(point, skip_if_exists=True)
        self.run = run
        self.numbers: dict[str, int] = {}  # Tune trial id -> study trial number
        self._told: set[str] = set()  # Tune trials whose study trial has ended
        self._unclaimed: list[int] = []  # numbers of study trials asked before a crash
        self.max_epochs = max_epochs
        self.unit_seconds = unit_seconds
        self.deadline = deadline
        self._best: dict[str, dict] = {}  # trial id -> its best epoch's result so far
        self._last_epoch: dict[str, int] = {}  # trial id -> last epoch reported to Optuna
        self._epoch_seconds: list[float] = []  # every epoch's duration, for the budget
        self._epoch_units: dict[str, float] = {}  # trial id -> its cost per epoch, in units

    def _connect(self, url: str) -> None:
        self._storage = st.open_storage(url)
        self._trials = {}  # live handles on the study's trials, by Tune trial id
        with st.optuna_quiet():
            self.study = optuna.load_study(
                study_name=self.study_name, storage=self._storage, sampler=self.sampler
            )

    def _handle(self, number: int) -> optuna.Trial:
        """A live handle on study trial `number`, asked by this process or an earlier one.

        Optuna has no call that reopens a trial another process asked (optuna#2987): its
        storage maps the number to the trial's id, and `Trial(study, id)` opens it."""
        study_id = self._storage.get_study_id_from_name(self.study_name)
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(study_id, number)
        return optuna.Trial(self.study, trial_id)

    def _trial(self, trial_id: str) -> optuna.Trial:
        if trial_id not in self._trials:
            self._trials[trial_id] = self._handle(self.numbers[trial_id])
        return self._trials[trial_id]

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.deadline is not None and self.deadline.remaining() < self.trial_cost():
            return Searcher.FINISHED  # running trials finish; no new one starts
        if trial_id not in self.numbers:
            trial = self._handle(self._unclaimed.pop(0)) if self._unclaimed else self.study.ask()
            trial.set_user_attr(st.RUN_ATTR, self.run)
            trial.set_user_attr(st.TUNE_ID_ATTR, trial_id)
            self.numbers[trial_id] = trial.number
            self._trials[trial_id] = trial
        trial = self._trial(trial_id)
        self.space(trial)  # define-by-run: fills in the parameters a reclaimed trial lacks
        return dict(trial.params)

    def trial_cost(self) -> float:
        """Seconds a new trial may take: `max_epochs` median epochs (0 before any epoch)."""
        if not self._epoch_seconds:
            return 0.0
        return self.max_epochs * statistics.median(self._epoch_seconds)

    def __getstate__(self) -> dict:
        # Both of Tune's pickles (the searcher's state and the Tuner) go through here.
        state = self.__dict__.copy()
        if self.study_url is not None:  # the study is in its storage: keep the numbers
            state.update(_storage=None, study=None, _trials={})
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.study_url is not None:
            self._reconnect(_restore_url or self.study_url)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        # The deadline is the same object as Tune's stopper (both in the Tuner's pickle):
        # the one of the saved state would be a copy, which the stopper never hears of.
        deadline = self.deadline
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))
        self.deadline = deadline

    def _reconnect(self, url: str) -> None:
        # The sampler's random state is the saved one: left as it is, it would draw again
        # the configurations it drew for the trials asked since the state was saved.
        self.sampler.reseed_rng()
        self._connect(url)
        finished = {t.number for t in self.study.get_trials(deepcopy=False, states=_ENDED)}
        # Told before the crash, after the state was saved: not told twice.
        self._told |= {tid for tid, number in self.numbers.items() if number in finished}
        claimed = set(self.numbers.values())
        self._unclaimed = [
            t.number
            for t in st.own_trials(self.study, self.run, states=(TrialState.RUNNING,))
            if t.number not in claimed
        ]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._told:
            self._record(trial_id, result)

    def _record(self, trial_id: str, result: dict) -> None:
        primary, mode = self.objectives[0]
        if m.EPOCH not in result or primary not in result:
            return
        epoch, value = int(result[m.EPOCH]), float(result[primary])
        if m.EPOCH_SECONDS in result:
            self._epoch_seconds.append(float(result[m.EPOCH_SECONDS]))
        if self.unit_seconds and m.TRAIN_SECONDS in result:
            # Seconds over all epochs (a restarted trial's checkpoint keeps its sum).
            per_epoch = float(result[m.TRAIN_SECONDS]) / epoch / self.unit_seconds
            self._epoch_units[trial_id] = round(per_epoch, 4)
        best = self._best.get(trial_id)
        if best is None or (value > best[primary] if mode == "max" else value < best[primary]):
            self._best[trial_id] = {k: result.get(k) for k, _ in self.objectives}
        # A trial restored from a checkpoint repeats no epoch; one restarted from an
        # older checkpoint may: Optuna keeps the first value of a step, and so do we.
        if len(self.objectives) == 1 and epoch > self._last_epoch.get(trial_id, 0):
            self._trial(trial_id).report(value, epoch)
            self._last_epoch[trial_id] = epoch

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._told:
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
        if trial_id in self._epoch_units:  # what a warm start on seconds will need
            self._trial(trial_id).set_user_attr(
                st.EPOCH_UNITS_ATTR, self._epoch_units.pop(trial_id)
            )
        self.study.tell(self.numbers[trial_id], values, state=state)
        self._told.add(trial_id)
        self._trials.pop(trial_id, None)


# TPE as this search runs it, with several trials training at once. `constant_liar`
# counts the running trials as bad results while proposing, so two concurrent proposals
# do not land on the same spot; `multivariate` models the parameters jointly (depth,
# width and batch size together set both the accuracy and the cost of a configuration);
# the first `n_startup_trials` are drawn at random. Benchmark 14 (retired into
# docs/benchmarks.md) measured each setting alone: over seeds 0-2, 20 start-up trials
# (Optuna's default is 10) gave winners 0.36 [-0.22-+0.45] t10k points better in 0.81x
# [0.78-1.52] the wall time.
TPE_SETTINGS = {"constant_liar": True, "multivariate": True, "n_startup_trials": 20}


def tpe_sampler(seed: int) -> optuna.samplers.TPESampler:
    """TPE with `TPE_SETTINGS`, its random draws seeded by `seed`."""
    return optuna.samplers.TPESampler(seed=seed, **TPE_SETTINGS)
