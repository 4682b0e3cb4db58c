"""A whole search on a tiny budget: the CLI, Ray, Optuna, ASHA and the run folder."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from search.run_folder import RUN_JSON, TRIAL_COLUMNS, TRIALS_CSV, read_test_split
from search.space import SEED_CONFIG

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
        assert set(state) >= {"model", "optimizer", "model_config"}
        assert state["model_config"]["hidden_size"] == row["hidden_size"]


def test_run_info_lets_analysis_work_alone(tiny_run):
    _, run_dir = tiny_run
    info = json.loads((run_dir / RUN_JSON).read_text())
    assert info["dataset"] == "mnist"
    assert info["split_sizes"] == {"train": 540, "val": 60, "test": 100}
    assert info["seed"] == 1
    assert info["packages"]["torch"] == torch.__version__.split("+")[0]
    assert info["trial_counts"] and info["wall_seconds"] > 0
    test = read_test_split(run_dir)
    assert test.images.shape == (100, 28, 28) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [10] * 10
