"""ASHA on training seconds (--asha-time seconds): its rungs, what it stops, its unit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search import cost
from search import metrics as m
from search.config import SearchConfig
from search.data import load_dataset
from search.space import SEED_CONFIG
from search.trainable import TrialData
from search.tuner import SECONDS_CEILING_UNITS, early_stopping


def rungs(scheduler) -> list[float]:
    return scheduler.rungs.milestones


def test_on_epochs_the_rungs_are_epochs():
    config = SearchConfig(max_epochs=12, grace_epochs=1, reduction_factor=3, asha_time="epochs")
    scheduler = early_stopping(config)
    assert scheduler.time_attr == m.EPOCH
    assert rungs(scheduler) == [1, 3, 9]


def test_on_seconds_the_rungs_are_units_apart_and_never_end_a_trial_before_its_epochs():
    config = SearchConfig(max_epochs=12, grace_epochs=2, reduction_factor=3, asha_time="seconds")
    scheduler = early_stopping(config, unit_seconds=0.5)
    assert scheduler.time_attr == m.TRAIN_SECONDS
    assert rungs(scheduler)[:3] == [1.0, 3.0, 9.0]  # 2 units, 6, 18
    assert scheduler.max_t == 12 * SECONDS_CEILING_UNITS * 0.5
    with pytest.raises(ValueError):
        early_stopping(config)  # the unit is measured first, never guessed


@pytest.mark.parametrize("asha_time", ["epochs", "seconds"])
def test_a_grace_as_long_as_the_cap_stops_nothing_on_either_axis(asha_time):
    # On seconds, a rung at --max-epochs units would still stop a trial that costs more
    # than the tutorial's network before its last epoch; no scheduler, no unit to time.
    config = SearchConfig(max_epochs=3, grace_epochs=3, asha_time=asha_time)
    assert not config.judges_on_seconds
    assert isinstance(early_stopping(config), FIFOScheduler)


def judge(scheduler, trial: str, seconds: float, epoch: int, acc: float) -> str:
    result = {m.VAL_ACC: acc, m.EPOCH: epoch, m.TRAIN_SECONDS: seconds}
    return scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial), result)


@pytest.mark.parametrize("asha_time, kept", [("epochs", True), ("seconds", False)])
def test_a_costly_trial_is_judged_against_what_the_same_time_bought(asha_time, kept):
    """A cheap trial (0.5 s an epoch) reaches 0.85 after 1 epoch and 0.95 after 6 (3 s).
    A costly one (3 s an epoch) has 0.90 after its first epoch: ahead of the cheap one
    at epoch 1, behind it at equal time."""
    config = SearchConfig(max_epochs=12, grace_epochs=1, reduction_factor=3, asha_time=asha_time)
    scheduler = early_stopping(config, unit_seconds=1.0)
    scheduler.set_search_properties(m.VAL_ACC, m.MODE)
    for trial in ("cheap", "costly"):
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial))
    for epoch, acc in enumerate([0.85, 0.9, 0.91, 0.92, 0.93, 0.95], start=1):
        judge(scheduler, "cheap", 0.5 * epoch, epoch, acc)
    decision = judge(scheduler, "costly", 3.0, 1, 0.90)
    assert (decision == TrialScheduler.CONTINUE) is kept


def test_the_unit_is_one_tutorial_epoch_timed_as_a_trial_trains(idx_folder):
    data = TrialData.of(load_dataset("mnist", idx_folder, cv_folds=0))
    training, evaluating = cost.time_epoch(data, SEED_CONFIG, 1, 0)
    assert 0 < evaluating < training < 30
    # Under cross-validation an epoch's series are shared by the folds: 5 folds of a
    # small pool cost about what one model's epoch does.
    folds = TrialData.of(load_dataset("mnist", idx_folder))
    cv_training, _ = cost.time_epoch(folds, SEED_CONFIG, 1, 0)  # one fold's
    assert 5 * cv_training < 2 * training
