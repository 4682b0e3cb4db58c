"""Whole searches on data other than MNIST: an archive set aeon ships (offline), and the
user's own multivariate series of unequal lengths with string labels, killed and resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from search import metrics as m
from search.data import load_dataset
from search.run_folder import BEST_CONFIG, TRIALS_CSV, load_best, ranked, read_trials
from tests.conftest import REPO
from tests.test_resume import (
    Search,
    assert_study_matches,
    base_args,
    epochs_reported,
    run_search,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_an_early_classifier_searched_on_an_archive_set(tmp_path):
    run_dir = tmp_path / "runs" / "italy"
    args = base_args(
        tmp_path, "italy", "--dataset", "ucr:ItalyPowerDemand", "--no-report", space=None
    )
    args += ["--trials", "3", "--max-epochs", "2", "--confirm-top", "1", "--objective", "early"]
    code, out, err = run_search(*args)
    assert code == 0, err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"]["classes"] == ["1", "2"]
    assert info["data"]["selection"] == "5-fold cross-validation"
    assert info["split_sizes"] == {"train": 67, "folds": 5, "test": 1029}
    assert info["flags"]["loss"] == "uniform"  # --objective early: every step alike
    table = read_trials(run_dir / TRIALS_CSV)
    # The one confirmed trial is the best by the harmonic mean of accuracy and earliness.
    confirmed = table[table[m.CONFIRMED_HM].notna()]
    by_hm = ranked(table.assign(**{m.CONFIRMED_HM: float("nan")}), m.VAL_HM)
    assert confirmed["trial_id"].tolist() == by_hm["trial_id"].head(1).tolist()
    for _, row in table.iterrows():
        state = torch.load(run_dir / row["checkpoint"], weights_only=True)
        assert len(state["models"]) == 5  # one model per fold
        # The out-of-fold figures count every one of the 67 training series once.
        assert round(row[m.VAL_ACC] * 67, 6) == round(row[m.VAL_ACC] * 67)
    best = json.loads((run_dir / BEST_CONFIG).read_text())
    assert (
        best["chosen_by"] == m.CONFIRMED_HM and best["trial_id"] == confirmed["trial_id"].iloc[0]
    )
    assert best["members"] == 5 + 5  # its folds' models and the confirmation's five
    assert best["stopping_rule"]["threshold"] == ranked(table, m.VAL_HM).iloc[0][m.VAL_THRESHOLD]
    # The winner classifies the archive's own test series, raw, in its class names.
    test = load_dataset("ucr:ItalyPowerDemand").test
    winner = load_best(run_dir)
    raw = test.values[:, :, 0].numpy()  # (1029, 24): univariate series as users hold them
    labels = winner.predict(raw)
    assert set(labels) <= {"1", "2"}
    classes, read = winner.predict_early(raw)
    assert len(classes) == len(raw) and ((read > 0) & (read <= 1)).all()
    truth = [info["data"]["classes"][i] for i in test.labels.tolist()]
    # Six short epochs on every step alike: far from the archive's best, but above chance
    # (0.50; over 1,029 series, 0.55 is more than three standard deviations above it).
    assert np.mean(np.array(labels) == np.array(truth)) > 0.55


def unequal_series(path, n: int = 60, seed: int = 0):
    """Two-channel series of 12-30 time points in three named classes, as a .npz."""
    rng = np.random.default_rng(seed)
    names = np.array(["rise", "fall", "flat"])
    y = names[np.arange(n) % 3]
    lengths = rng.integers(12, 31, n)
    x = np.full((n, 30, 2), np.nan)  # NaN past each length: ignored
    for i, (label, t) in enumerate(zip(y, lengths, strict=True)):
        slope = {"rise": 1.0, "fall": -1.0, "flat": 0.0}[label]
        x[i, :t, 0] = slope * np.linspace(0, 1, t) + 0.1 * rng.standard_normal(t)
        x[i, :t, 1] = 50.0 + rng.standard_normal(t)  # far from 0: standardised away
    test_x, test_y, test_lengths = x[:15].copy(), y[:15].copy(), lengths[:15].copy()
    np.savez(
        path, X=x, y=y, lengths=lengths, X_test=test_x, y_test=test_y, lengths_test=test_lengths
    )
    return path


def test_the_users_unequal_multivariate_series_killed_and_resumed(tmp_path):
    data_path = unequal_series(tmp_path / "mine.npz")
    run_dir = tmp_path / "runs" / "mine"
    args = base_args(tmp_path, "mine", "--dataset", str(data_path), "--trials", "4", space=None)
    args += ["--max-epochs", "3", "--confirm-top", "1", "--grace-epochs", "3"]
    args += ["--confirm-folds", "3"]  # of the five (cross-validation's default: all five)
    first = Search(*args)
    try:
        wait_for(lambda: len(epochs_reported(run_dir)) >= 2, what="two trials reporting")
        first.proc.send_signal(signal.SIGKILL)  # the driver dies, its Ray with it
    finally:
        first.kill_group()
    code, out, err = run_search(*base_args(tmp_path, "mine", "--resume", space=None), timeout=600)
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert len(table) == 4 and set(table["status"]) == {"completed"}
    assert_study_matches(run_dir, table)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"]["classes"] == ["fall", "flat", "rise"]
    assert not info["data"]["equal_length"] and info["data"]["features"] == 2
    assert info["sessions"] == 1  # the killed session never finished
    for _, row in table.iterrows():
        assert len(json.loads(row[m.VAL_ACC_BY_SHARE])) == 20
        assert len(json.loads(row[m.VAL_ACC_BY_STEP])) == 30  # the longest series' steps

    # best/ keeps each model's standardisation, fitted on its fold's training series.
    data = load_dataset(str(data_path), seed=0)
    expected = data.shape_for(data.pool[data.folds[0][0]])
    winner = load_best(run_dir)
    # The winner's five fold models and its three confirmation folds' (--confirm-folds).
    assert len(data.folds) == 5 and len(winner.model.members) == 5 + 3
    first_member = winner.model.members[0]
    assert torch.allclose(first_member.shift, torch.tensor(expected.shift))
    assert torch.allclose(first_member.scale, torch.tensor(expected.scale))
    assert first_member.shift[1] > 40  # channel 1's raw level, not re-scaled data
    # Raw series of unequal lengths, as a list, classified in the user's own labels.
    series = [data.test.values[i, : data.test.lengths[i]].numpy() for i in range(len(data.test))]
    assert set(winner.predict(series)) <= {"fall", "flat", "rise"}

    # The report reads the run alone: curves by step and by share of the series.
    done = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(run_dir)], cwd=REPO, timeout=300
    )
    assert done.returncode == 0
    assert (run_dir / "report" / "index.html").stat().st_size > 0
