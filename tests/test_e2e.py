"""A whole search on a tiny budget: the CLI, Ray, Optuna, ASHA and the run folder."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
import torch

from search import metrics as m
from search.run_folder import (
    BEST_CONFIG,
    TRIAL_COLUMNS,
    TRIALS_CSV,
    load_best,
    ranked,
    read_test_split,
    read_trials,
)
from search.run_record import RUN_JSON
from search.space import SEED_CONFIG
from tests.conftest import SMALL_NETS

pytestmark = pytest.mark.e2e


def test_cli_succeeds_quietly(tiny_run):
    result, run_dir = tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "SIGTERM" not in result.stderr
    assert "Top " in result.stdout and str(run_dir) in result.stdout
    assert "4/4 done" in result.stderr  # the progress line
    # The run ends with its report, built from the run folder.
    assert f"Report: {run_dir / 'report' / 'index.html'}" in result.stdout
    assert (run_dir / "report" / "index.html").stat().st_size > 0


def test_trials_csv(tiny_run):
    _, run_dir = tiny_run
    table = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert list(table.columns) == TRIAL_COLUMNS
    assert len(table) == 4 and table["trial_id"].is_unique
    assert set(table["status"]) <= {"completed", "stopped"}
    assert (table["epochs"].between(1, 2)).all()

    seed = table[table["label"] == "seed"]
    assert len(seed) == 1
    assert {k: seed.iloc[0][k] for k in SEED_CONFIG} == SEED_CONFIG
    # TPE's proposals are distinct configurations, not the seed again.
    assert len(table.drop_duplicates(["hidden_size", "lr", "dropout"])) == 4

    for _, row in table.iterrows():
        by_step = json.loads(row["val_acc_by_step"])
        assert len(by_step) == 28 and all(0.0 <= a <= 1.0 for a in by_step)
        assert math.isclose(by_step[-1], row["val_acc"])
        assert row["node"] and row["seconds"] > 0
        state = torch.load(run_dir / row["checkpoint"], weights_only=True)
        assert state["epoch"] == row["best_epoch"]
        assert set(state) >= {"models", "optimizers", "model_config", "shape"}
        assert len(state["models"]) == 1  # one validation split: one model per trial
        assert state["model_config"]["hidden_size"] == row["hidden_size"]
        # The early classifier's rule and figures, chosen on the validation digits.
        assert 0 <= row[m.VAL_EARLINESS] <= 1 and 0 <= row[m.VAL_HM] <= 1
        assert row[m.VAL_THRESHOLD] >= 0


def test_run_info_lets_analysis_work_alone(tiny_run):
    _, run_dir = tiny_run
    info = json.loads((run_dir / RUN_JSON).read_text())
    assert info["dataset"] == "mnist" and info["format_version"] == 2
    assert info["split_sizes"] == {"train": 540, "val": 60, "test": 100}
    assert info["data"]["classes"] == list(range(10)) and info["data"]["image"]
    # The space that goes with 28-step digits, narrowed by the tests' --space file.
    overrides = tomllib.loads(SMALL_NETS.read_text())
    assert info["space"] == {"patches": [1], "length": 28, "overrides": overrides}
    assert info["seed"] == 1
    assert info["packages"]["torch"] == torch.__version__.split("+")[0]
    assert info["trial_counts"] and info["wall_seconds"] > 0
    test = read_test_split(run_dir)
    assert test.values.shape == (100, 28, 28) and test.values.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [10] * 10


def test_the_best_are_confirmed_and_the_winner_lands_in_best(tiny_run):
    _, run_dir = tiny_run
    table = read_trials(run_dir / TRIALS_CSV)
    confirmed = table[table[m.CONFIRMED_ACC].notna()]
    assert len(confirmed) == 3  # --confirm-top's default
    # The three best by validation were confirmed, and now rank first, by confirmed accuracy.
    by_validation = ranked(table.drop(columns=[m.CONFIRMED_ACC]))
    assert set(confirmed["trial_id"]) == set(by_validation["trial_id"].head(3))
    by_confirmed = confirmed.sort_values(m.CONFIRMED_ACC, ascending=False, kind="stable")
    assert (
        ranked(table)[m.CONFIRMED_ACC].head(3).tolist() == by_confirmed[m.CONFIRMED_ACC].tolist()
    )
    for _, row in confirmed.iterrows():
        folds = json.loads(row[m.CONFIRMED_FOLD_ACCS])
        assert len(folds) == 2  # --confirm-folds's default
        assert row[m.CONFIRMED_ACC] == pytest.approx(sum(folds) / 2)  # equal-sized folds
        assert row[m.CONFIRMED_LOW] <= row[m.CONFIRMED_ACC] <= row[m.CONFIRMED_HIGH]
    best = json.loads((run_dir / BEST_CONFIG).read_text())
    assert best["trial_id"] == ranked(table).iloc[0]["trial_id"]
    assert best["members"] == 1 + 2  # its search trial and its two confirmation folds
    assert json.loads((run_dir / RUN_JSON).read_text())["confirm_seconds"] > 0
    winner = load_best(run_dir)
    assert winner.model(torch.rand(2, 28, 28) * 255).shape == (2, 28, 10)
    assert set(winner.predict(np.random.randint(0, 256, (3, 28, 28)))) <= set(range(10))
    assert winner.rule is not None and winner.rule.threshold == best[m.VAL_THRESHOLD]
