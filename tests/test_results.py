"""analysis.results: what the report reads out of a run folder (tests/fake_run.py's)."""

from __future__ import annotations

import math
import os
import shutil

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState, create_trial

from analysis import results as res
from models.early import THRESHOLDS
from search import metrics as m
from search.data import Split
from search.run_folder import TEST_SPLIT, TRIALS_CSV
from search.run_record import RunRecord
from search.space import SEED_LABEL


def copy_of(fake_run, tmp_path):
    shutil.copytree(fake_run, tmp_path / "run")
    return tmp_path / "run"


def test_epoch_times_count_from_the_run_s_start(fake_run, tmp_path):
    wall = res.load_run(fake_run).epochs["wall_seconds"]
    assert wall.min() >= 0 and wall.max() < 600  # the fake run trains in seconds


def test_what_a_run_folder_lacks_is_said_in_notes(fake_run, tmp_path):
    assert res.load_run(fake_run).notes == []
    run_dir = copy_of(fake_run, tmp_path)
    trials = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    trials.loc[trials["label"] == SEED_LABEL, "label"] = ""
    trials.to_csv(run_dir / TRIALS_CSV, index=False)
    (run_dir / TEST_SPLIT).unlink()
    run = res.load_run(run_dir)
    assert "The tutorial's configuration (`seed`) is not among the trials." in run.notes
    assert any(TEST_SPLIT in note for note in run.notes)
    # Without test series, the test figures are empty tables of the usual columns.
    held_out = res.evaluate_on_test(run, res.ranked_top(run, 3))
    assert list(held_out.by_step.columns) == res.BY_STEP_COLUMNS and held_out.by_step.empty
    assert list(held_out.by_share.columns) == res.BY_SHARE_COLUMNS and held_out.by_share.empty
    assert list(held_out.tradeoff.columns) == res.TRADEOFF_COLUMNS and held_out.tradeoff.empty


def test_the_environment_table_says_how_to_reproduce_the_run(fake_run):
    info = RunRecord.read(fake_run)
    rows = dict(res.environment(info).itertuples(index=False))
    assert rows["command"] == info.command and rows["seed"] == str(info.seed)
    assert rows["machine: cpus"] == str(os.cpu_count())
    assert rows["package: torch"] == info.packages["torch"]
    assert rows["flag: --trials"] == str(info.flags["trials"])
    info.finished = None
    assert dict(res.environment(info).itertuples(index=False))["finished"] == "(not set)"
    # The default space has no file; a --space file's tables are shown as recorded.
    assert rows["search space: --space file"] == "(not set)"
    info.space = {**info.space, "overrides": {"batch_size": {"value": 64}}}
    rows = dict(res.environment(info).itertuples(index=False))
    assert rows["search space: --space file"] == '{"batch_size": {"value": 64}}'


def test_only_finished_or_pruned_study_trials_count_as_measured():
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(create_trial(params={"x": 0.1}, distributions=dist, value=0.9))
    study.add_trial(
        create_trial(
            params={"x": 0.2},
            distributions=dist,
            state=TrialState.PRUNED,
            intermediate_values={1: 0.5, 2: 0.6},
        )
    )
    running = study.ask(dist)  # still training: its values so far are not a result
    running.report(0.99, 1)
    study.add_trial(create_trial(params={"x": 0.4}, distributions=dist, state=TrialState.FAIL))
    measured = [(t.params["x"], value) for t, value in res._measured(study)]
    assert measured == [(0.1, 0.9), (0.2, 0.6)]


def test_test_figures_of_a_trial_without_a_stopping_rule_or_checkpoint(fake_run, tmp_path):
    run_dir = copy_of(fake_run, tmp_path)
    trials = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    trials[m.VAL_THRESHOLD] = math.nan  # none recorded: no early classifier to judge
    trials.to_csv(run_dir / TRIALS_CSV, index=False)
    run = res.load_run(run_dir)
    chosen = res.ranked_top(run, 2)
    (run_dir / chosen.loc[1, "checkpoint"]).unlink()
    held_out = res.evaluate_on_test(run, chosen)
    (scores,) = held_out.scores.to_dict("records")
    assert scores["trial_id"] == chosen.loc[0, "trial_id"] and math.isnan(scores["test_hm"])
    assert scores["test_acc"] >= 0 and not held_out.tradeoff["chosen"].any()
    assert len(held_out.tradeoff) == len(THRESHOLDS)  # the usual grid, no NaN added
    who = f"trial {chosen.loc[1, 'trial_id']} ({chosen.loc[1, 'name']})"
    assert held_out.notes == [f"{who}: checkpoint {chosen.loc[1, 'checkpoint']} is missing."]


def test_a_recognition_point_is_the_first_step_at_or_above_the_level():
    by_step = pd.DataFrame(
        {"label": "a", "trial_id": "t", "step": [1, 2, 3], "accuracy": [0.4, 0.5, 0.9]}
    )
    (points,) = res.recognition_points(by_step, levels=(0.5, 0.9, 0.95)).to_dict("records")
    assert (points["steps_to_50pct"], points["steps_to_90pct"]) == (2, 3)
    assert math.isnan(points["steps_to_95pct"]) and points["final_accuracy"] == 0.9


def test_example_series_are_the_first_of_classes_spread_over_the_classes():
    labels = torch.tensor([2, 0, 1, 0, 2])
    test = Split(torch.zeros(5, 3, 1), torch.full((5,), 3), labels)
    assert res.example_series(test, classes=3, count=1) == [1]  # class 0's first
    assert res.example_series(test, classes=3, count=2) == [1, 0]  # classes 0 and 2
    assert res.example_series(test, classes=3, count=3) == [1, 2, 0]
