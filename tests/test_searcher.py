"""What Optuna is told about each trial, and the time budget (no Ray cluster needed)."""

from __future__ import annotations

import pickle

import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search import metrics as m
from search.budget import Deadline, ResumableSearch
from search.config import duration_seconds
from search.searcher import EpochOptunaSearch, tpe_sampler
from search.space import SearchSpace

sample = SearchSpace()

MAX_EPOCHS = 3


def searcher(deadline: Deadline | None = None, objective: str = "accuracy") -> EpochOptunaSearch:
    return EpochOptunaSearch(
        space=sample,
        objectives=m.objective_metrics(objective),
        sampler=tpe_sampler(0),
        max_epochs=MAX_EPOCHS,
        deadline=deadline,
    )


def epoch(n: int, acc: float, **extra) -> dict:
    return {m.EPOCH: n, m.VAL_ACC: acc, m.EPOCH_SECONDS: 1.0, **extra}


def run_trial(s: EpochOptunaSearch, trial_id: str, accs: list[float], **complete) -> None:
    """Feed a trial's epochs the way Tune does: every result but the last to
    on_trial_result, the last one to on_trial_complete only."""
    assert s.suggest(trial_id) is not None
    for n, acc in enumerate(accs[:-1], start=1):
        s.on_trial_result(trial_id, epoch(n, acc))
    s.on_trial_complete(trial_id, epoch(len(accs), accs[-1]), **complete)


def study_trial(s: EpochOptunaSearch, number: int):
    return s.study.trials[number]


def test_a_trial_trained_to_the_cap_is_complete_at_its_best_epoch():
    s = searcher()
    run_trial(s, "a", [0.5, 0.8, 0.7])
    trial = study_trial(s, 0)
    assert trial.state is TrialState.COMPLETE
    assert trial.value == 0.8  # the best epoch, the figure trials.csv ranks by
    assert trial.intermediate_values == {1: 0.5, 2: 0.8, 3: 0.7}


def test_a_trial_stopped_early_is_pruned_with_its_epochs():
    s = searcher()
    run_trial(s, "a", [0.4, 0.6])  # ASHA stopped it after epoch 2 of 3
    trial = study_trial(s, 0)
    assert trial.state is TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.4, 2: 0.6}
    assert trial.value == 0.6  # Optuna values a pruned trial at its last step


def test_errors_fail_and_divergence_counts_as_zero():
    s = searcher()
    assert s.suggest("boom") is not None
    s.on_trial_result("boom", epoch(1, 0.3))
    s.on_trial_complete("boom", None, error=True)
    assert s.suggest("nan") is not None
    s.on_trial_complete("nan", {m.EPOCH: 1, m.VAL_ACC: 0.0, m.DIVERGED: True})
    assert study_trial(s, 0).state is TrialState.FAIL
    assert (study_trial(s, 1).state, study_trial(s, 1).value) == (TrialState.COMPLETE, 0.0)


def test_trials_that_ended_without_a_usable_report():
    s = searcher()
    # Ended by Tune before its first report (the search stopped): pruned, not failed.
    assert s.suggest("early") is not None
    s.on_trial_complete("early", None)
    # Trained to the cap, but its reports lack the objective: nothing to learn from.
    assert s.suggest("mute") is not None
    s.on_trial_complete("mute", {m.EPOCH: MAX_EPOCHS})
    assert [study_trial(s, i).state for i in (0, 1)] == [TrialState.PRUNED, TrialState.FAIL]
    # With a one-epoch cap too, a trial that never reported did not reach it.
    one = EpochOptunaSearch(
        space=sample,
        objectives=m.objective_metrics("accuracy"),
        sampler=tpe_sampler(0),
        max_epochs=1,
    )
    assert one.suggest("early") is not None
    one.on_trial_complete("early", {})
    assert study_trial(one, 0).state is TrialState.PRUNED


def test_a_repeated_epoch_after_a_restart_is_reported_once():
    s = searcher()
    assert s.suggest("a") is not None
    s.on_trial_result("a", epoch(1, 0.5))
    s.on_trial_result("a", epoch(2, 0.6))
    s.on_trial_result("a", epoch(2, 0.61))  # restarted from the epoch-1 checkpoint
    s.on_trial_complete("a", epoch(3, 0.7))
    assert study_trial(s, 0).intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}


def test_no_trial_starts_that_the_budget_cannot_hold():
    deadline = Deadline(10.0)
    s = searcher(deadline)
    assert s.trial_cost() == 0.0  # nothing known yet: the first trial may start
    run_trial(s, "a", [0.5, 0.6, 0.7])  # three epochs of 1 s each
    assert s.trial_cost() == MAX_EPOCHS * 1.0
    assert s.suggest("b") is not None  # 3 s fit in the 10 s left
    deadline._end -= 8.0  # 2 s left
    assert s.suggest("c") == Searcher.FINISHED
    assert deadline("b", epoch(1, 0.5)) is False  # running trials go on until the end
    deadline._end -= 3.0
    assert deadline("b", epoch(2, 0.5)) is True  # and stop once the time is up


def test_a_trial_may_take_max_epochs_median_epochs():
    s = searcher()
    s.suggest("a")
    for n, seconds in enumerate([1.0, 4.0, 5.0], start=1):
        s.on_trial_result("a", epoch(n, 0.5, **{m.EPOCH_SECONDS: seconds}))
    assert s.trial_cost() == MAX_EPOCHS * 4.0


def test_the_deadline_survives_the_searchers_save_and_restore(tmp_path):
    deadline = Deadline(60.0)
    s = searcher(deadline)
    run_trial(s, "a", [0.5, 0.6, 0.7])
    s.save(str(tmp_path / "searcher.pkl"))
    assert s.deadline is deadline
    # A resumed search: the Tuner's pickle gives a new searcher and stopper (one object),
    # then Tune restores the searcher's own state from its file.
    restored = pickle.loads(pickle.dumps(searcher(deadline)))
    shared = restored.deadline
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.deadline is shared
    assert shared._end is None  # the clock is not pickled: a new session, a new budget
    assert study_trial(restored, 0).value == 0.7


def test_several_objectives_are_told_at_the_primary_metrics_best_epoch():
    s = searcher(objective="accuracy+size")
    assert s.suggest("a") is not None
    s.on_trial_result("a", epoch(1, 0.5, params=1000))
    s.on_trial_result("a", epoch(2, 0.8, params=1000))
    s.on_trial_complete("a", epoch(3, 0.7, params=1000))
    run_trial(s, "short", [0.9])  # stopped by ASHA after one epoch
    assert s.suggest("nan") is not None
    s.on_trial_complete("nan", {m.EPOCH: 1, m.VAL_ACC: 0.0, m.DIVERGED: True, "params": 50})
    complete, pruned, diverged = s.study.trials
    assert (complete.state, complete.values) == (TrialState.COMPLETE, [0.8, 1000])
    assert pruned.state is TrialState.PRUNED
    assert (diverged.state, diverged.values) == (TrialState.COMPLETE, [0.0, 50])
    assert [d.name for d in s.study.directions] == ["MAXIMIZE", "MINIMIZE"]


def test_the_anytime_objective_values_trials_by_their_area():
    s = searcher(objective="anytime")
    assert s.suggest("a") is not None
    s.on_trial_result("a", epoch(1, 0.9, val_area=0.3))
    s.on_trial_result("a", epoch(2, 0.8, val_area=0.5))
    s.on_trial_complete("a", epoch(3, 0.95, val_area=0.4))
    trial = study_trial(s, 0)
    assert trial.value == 0.5 and trial.intermediate_values == {1: 0.3, 2: 0.5, 3: 0.4}


def test_a_restored_search_that_its_budget_ended_searches_again():
    generator = ResumableSearch(searcher(Deadline(1.0)))
    generator.set_finished()  # the budget could not hold another trial
    saved = {**generator.get_state(), "counter": 7, "total_samples": 50}
    assert saved["finished"]
    restored = ResumableSearch(searcher())
    restored.set_state(saved)
    assert not restored.is_finished()
    restored.set_state({**saved, "counter": 50})
    assert restored.is_finished()  # --trials still ends it


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1.5h", 5400), ("45", 45)]
)
def test_durations(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1m", "m", "2d", "nan", "inf"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        duration_seconds(text)
