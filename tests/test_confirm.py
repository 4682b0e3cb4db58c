"""Confirming the winner on other folds, and the answer a run leaves in best/."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from models.lstm import Ensemble, LSTMConfig, RowLSTM
from search import metrics as m
from search.confirm import FoldResult, confirmed_figures, train_on_fold
from search.data import confirmation_folds, load_dataset
from search.errors import UserError
from search.run_folder import BEST_CONFIG, load_best, load_model, ranked, read_trials, write_best
from search.space import SEED_CONFIG
from search.storage import RunLocation


def test_confirmed_accuracy_pools_the_folds_with_a_wilson_interval():
    figures = confirmed_figures([FoldResult(45, 50, 1.0), FoldResult(45, 50, 1.0)])
    assert figures[m.CONFIRMED_ACC] == 0.9
    # Wilson 95% interval for 90 of 100 (e.g. Agresti & Coull 1998): 0.826 to 0.945.
    assert figures[m.CONFIRMED_LOW] == pytest.approx(0.8256, abs=1e-4)
    assert figures[m.CONFIRMED_HIGH] == pytest.approx(0.9448, abs=1e-4)
    assert json.loads(figures[m.CONFIRMED_FOLD_ACCS]) == [0.9, 0.9]


def test_folds_are_disjoint_stratified_and_the_size_of_the_validation_split(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0)  # 180 train + 20 validation digits
    pool, held = confirmation_folds(data, 3, seed=0)
    assert len(pool) == len(data.train) + len(data.val)
    assert [len(h) for h in held] == [len(data.val)] * 3
    assert len(set(torch.cat(held).tolist())) == 3 * len(data.val)  # no digit twice
    for h in held:
        assert torch.bincount(pool.labels[h], minlength=10).tolist() == [2] * 10
    with pytest.raises(UserError, match="--confirm-folds 11"):
        confirmation_folds(data, 11, seed=0)


def test_a_fold_trains_afresh_and_counts_its_held_out_digits(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0)
    pool, held = confirmation_folds(data, 1, seed=0)
    config = {**SEED_CONFIG, "hidden_size": 32, "lr": 3e-3, "batch_size": 32}
    result = train_on_fold(config, epochs=10, pool=pool, held=held[0], seed=1, threads=1)
    assert result.total == len(held[0])
    assert result.correct >= 0.9 * result.total  # the toy digits are easy: it learnt


def test_confirmed_trials_rank_first_and_best_holds_the_winner(fake_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(fake_run, run_dir)
    table = read_trials(run_dir / "trials.csv")
    # The validation runner-up confirms better than the validation winner.
    by_val = ranked(table)["trial_id"].tolist()
    table[m.CONFIRMED_ACC] = table["trial_id"].map({by_val[0]: 0.80, by_val[1]: 0.85})
    assert ranked(table)["trial_id"].tolist()[:3] == [by_val[1], by_val[0], by_val[2]]

    about = write_best(RunLocation.open(tmp_path, "run"), table)
    assert about["trial_id"] == by_val[1]
    assert json.loads((run_dir / BEST_CONFIG).read_text())["confirmed_acc"] == 0.85
    winner = table.set_index("trial_id").loc[by_val[1]]
    expected = load_model(run_dir / winner["checkpoint"])
    digits = torch.rand(4, 28, 28)
    assert torch.equal(load_best(run_dir)(digits), expected(digits))


def test_no_winner_no_best_folder(fake_run, tmp_path):
    table = read_trials(fake_run / "trials.csv").assign(status="failed")
    assert write_best(RunLocation.open(tmp_path, "run"), table) is None
    assert not (tmp_path / "run").exists()


def test_old_trials_tables_read_without_the_confirmed_columns(fake_run, tmp_path):
    old = pd.read_csv(fake_run / "trials.csv").drop(columns=[m.CONFIRMED_ACC])
    old.to_csv(tmp_path / "trials.csv", index=False)
    assert read_trials(tmp_path / "trials.csv")[m.CONFIRMED_ACC].isna().all()


def test_best_joins_the_fold_models_into_one_ensemble(fake_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(fake_run, run_dir)
    table = read_trials(run_dir / "trials.csv")
    winner = ranked(table).iloc[0]
    original = load_model(run_dir / winner["checkpoint"])
    config = {k: winner[k] for k in ("num_layers", "hidden_size", "dropout", "forget_bias")}
    folds = [RowLSTM(LSTMConfig.from_dict(config)) for _ in range(2)]  # fresh initialisations
    about = write_best(
        RunLocation.open(tmp_path, "run"),
        table,
        {winner["trial_id"]: [f.state_dict() for f in folds]},
    )
    assert about["members"] == 3
    model = load_best(run_dir)
    assert isinstance(model, Ensemble) and len(model.members) == 3
    digits = torch.rand(4, 28, 28)
    members = [original, *(f.eval() for f in folds)]
    expected = torch.stack([m(digits).softmax(-1) for m in members]).mean(0)  # (B, T, C)
    assert torch.allclose(model(digits).exp(), expected, atol=1e-6)
