"""Confirming the winner on other folds, and the answer a run leaves in best/."""

from __future__ import annotations

import json
import shutil
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch

from models.early import harmonic_mean
from models.lstm import Ensemble, LSTMConfig, SequenceLSTM, SeriesShape
from models.train import build, predict_proba
from search import metrics as m
from search.confirm import (
    FoldResult,
    _bootstrap_hm,
    _one_fold,
    confirm,
    confirmed_figures,
    train_on_fold,
)
from search.data import Dataset, Scaling, Split, confirmation_folds, load_dataset
from search.errors import UserError
from search.run_folder import (
    BEST_CONFIG,
    CONFIRMED_COLUMNS,
    load_best,
    load_model,
    ranked,
    read_trials,
    write_best,
)
from search.space import SEED_CONFIG, hyperparameters
from search.storage import RunLocation
from search.trainable import TrialData


def fold(right: int, total: int, early_right: int | None = None, read: float = 0.5):
    early_right = right if early_right is None else early_right
    return FoldResult(
        total,
        1.0,
        [True] * right + [False] * (total - right),
        [0.5] * total,
        [True] * early_right + [False] * (total - early_right),
        [read] * total,
    )


def test_confirmed_accuracy_pools_the_folds_with_a_wilson_interval():
    figures = confirmed_figures([fold(45, 50), fold(45, 50)])
    assert figures[m.CONFIRMED_ACC] == 0.9
    # Wilson 95% interval for 90 of 100 (e.g. Agresti & Coull 1998): 0.826 to 0.945.
    assert figures[m.CONFIRMED_LOW] == pytest.approx(0.8256, abs=1e-4)
    assert figures[m.CONFIRMED_HIGH] == pytest.approx(0.9448, abs=1e-4)
    assert json.loads(figures[m.CONFIRMED_FOLD_ACCS]) == [0.9, 0.9]


def test_the_confirmed_early_figures_pool_the_rule_s_decisions():
    figures = confirmed_figures([fold(45, 50, early_right=40, read=0.2), fold(45, 50, 40, 0.4)])
    assert figures[m.CONFIRMED_EARLY_ACC] == 0.8
    assert figures[m.CONFIRMED_EARLINESS] == pytest.approx(0.3)
    hm = 2 * 0.8 * 0.7 / 1.5
    assert figures[m.CONFIRMED_HM] == pytest.approx(hm)
    assert figures[m.CONFIRMED_HM_LOW] < hm < figures[m.CONFIRMED_HM_HIGH]
    # A diverged fold decided nothing right and read its series whole.
    diverged = confirmed_figures([fold(45, 50, 40, 0.2), FoldResult(50, 1.0)])
    assert diverged[m.CONFIRMED_EARLY_ACC] == 0.4
    assert diverged[m.CONFIRMED_EARLINESS] == pytest.approx(0.6)


def test_folds_are_disjoint_stratified_and_the_size_of_the_validation_split(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0, cv_folds=0)  # 180 train + 20 val
    held = confirmation_folds(data, 3, seed=0)
    assert [len(val) for _, val in held] == [len(data.val)] * 3
    everything = torch.cat([val for _, val in held])
    assert len(set(everything.tolist())) == 3 * len(data.val)  # no digit twice
    for train, val in held:
        assert torch.bincount(data.pool.labels[val], minlength=10).tolist() == [2] * 10
        assert len(train) + len(val) == len(data.pool)
    with pytest.raises(UserError, match="--confirm-folds 11"):
        confirmation_folds(data, 11, seed=0)
    assert len(confirmation_folds(data, None, seed=0)) == 2


def test_under_cross_validation_the_confirmation_uses_every_fold(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0)  # 200 digits: 5 folds
    held = confirmation_folds(data, None, seed=0)
    assert len(held) == 5
    # Other folds than the search's, each the size of the search's.
    assert [len(v) for _, v in held] == [len(v) for _, v in data.folds]
    assert any(not torch.equal(a[1], b[1]) for a, b in zip(held, data.folds, strict=True))


def test_a_fold_trains_afresh_and_counts_its_held_out_digits(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0, cv_folds=0)
    held = confirmation_folds(data, 1, seed=0)
    config = {**SEED_CONFIG, "hidden_size": 32, "lr": 3e-3, "batch_size": 32}
    result = train_on_fold(config, 10, _one_fold(data, held[0]), 0.9, seed=1, threads=1)
    assert result.total == len(held[0][1])
    assert result.correct >= 0.9 * result.total  # the toy digits are easy: it learnt
    assert len(result.early_read) == result.total and max(result.early_read) <= 1.0


def unequal_toy(n: int = 120, longest: int = 9) -> Dataset:
    """Two classes told apart by their values' sign, in series of 3 to `longest` points:
    some end inside a step of two points, and shorter series end several steps early."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    lengths = 3 + torch.arange(n) % (longest - 2)
    values = 0.3 * torch.randn(n, longest, 1, generator=generator)
    values += (2 * labels - 1).float()[:, None, None] * 0.4
    values[torch.arange(longest)[None] >= lengths[:, None]] = 0.0
    pool = Split(values, lengths, labels)
    index = torch.arange(n)
    folds = ((index[index % 4 != 0], index[index % 4 == 0]),)
    return Dataset("toy", pool, pool[:4], (0, 1), folds, Scaling())


def test_a_folds_figures_are_those_of_its_model_on_its_held_out_series():
    data = unequal_toy()
    config = {**SEED_CONFIG, "hidden_size": 16, "patch": 2, "batch_size": 32, "lr": 3e-3}
    result = train_on_fold(config, 2, TrialData.of(data), 0.75, seed=1, threads=1)

    # The fold's model, rebuilt from the state it returned, answers every series again.
    train_index, val_index = data.folds[0]
    model, _ = build(config, data.shape_for(data.pool[train_index]), seed=0)
    model.load_state_dict(result.model)
    val = data.pool[val_index]
    probs = predict_proba(model, val.tensors())  # (N, S, C)
    assert result.total == len(val) == len(result.right) == len(result.early_read)
    for i, (length, label) in enumerate(
        zip(val.lengths.tolist(), val.labels.tolist(), strict=True)
    ):
        steps = -(-length // 2)  # two points a step
        answers = probs[i, :steps].argmax(-1).tolist()
        assert result.right[i] == (answers[-1] == label)
        assert result.step_shares[i] == pytest.approx(answers.count(label) / steps)
        sure = [s for s in range(steps) if probs[i, s].max() >= 0.75]
        at = sure[0] if sure else steps - 1
        assert result.early_right[i] == (answers[at] == label)
        assert result.early_read[i] == pytest.approx(min(2 * (at + 1), length) / length)
    # The rule decided some series before their end, and the model learnt the classes.
    assert min(result.early_read) < 1.0 and sum(result.right) > 0.75 * len(val)


def test_a_fold_that_diverges_keeps_its_size_and_time_but_no_answers():
    data = unequal_toy()
    data.pool.values[1:4, 0, 0] = float("inf")  # training series (every 4th is held out)
    config = {**SEED_CONFIG, "hidden_size": 16, "batch_size": 32}
    result = train_on_fold(config, 1, TrialData.of(data), 0.75, seed=1, threads=1)
    assert result.total == len(data.folds[0][1]) and result.busy_seconds > 0
    assert (result.right, result.early_read, result.model) == ([], [], None)


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
    digits = torch.rand(4, 28, 28) * 255
    assert torch.equal(load_best(run_dir).model(digits), expected(digits))


def test_best_config_says_what_won_how_it_was_chosen_and_how_it_decides(fake_run, tmp_path):
    shutil.copytree(fake_run, tmp_path / "run")
    table = read_trials(fake_run / "trials.csv")
    winner = ranked(table).iloc[0]
    run = RunLocation.open(tmp_path, "run")
    write_best(run, table, classes=["zero", *"123456789"])
    text = (tmp_path / "run" / BEST_CONFIG).read_text()
    about = json.loads(text)
    assert text.startswith('{\n  "trial_id"')  # indented, for people to read
    assert about["trial_id"] == winner["trial_id"]
    assert about["checkpoint"] == winner["checkpoint"]
    assert about["hyperparameters"] == {k: winner[k].item() for k in hyperparameters({})}
    assert about["classes"] == ["zero", *"123456789"]
    assert about["stopping_rule"] == {"threshold": winner[m.VAL_THRESHOLD]}
    assert about["chosen_by"] == m.VAL_ACC  # no confirmed figures in this table
    assert load_best(tmp_path / "run").classes[0] == "zero"
    # Without a stopping rule or class names, the winner decides at the end and answers
    # with the class numbers; confirmed figures choose the winner when there are any.
    table = table.assign(**{m.VAL_THRESHOLD: float("nan")})
    table[m.CONFIRMED_ACC] = table["trial_id"].map({winner["trial_id"]: 0.5})
    about = write_best(run, table)
    assert (about["stopping_rule"], about["classes"]) == (None, None)
    assert about["chosen_by"] == m.CONFIRMED_ACC
    assert load_best(tmp_path / "run").classes == list(range(10))


def test_no_winner_no_best_folder(fake_run, tmp_path):
    table = read_trials(fake_run / "trials.csv").assign(status="failed")
    assert write_best(RunLocation.open(tmp_path, "run"), table) is None
    assert not (tmp_path / "run").exists()


def test_a_trials_table_without_a_column_is_refused_in_one_line(fake_run, tmp_path):
    old = pd.read_csv(fake_run / "trials.csv").drop(columns=[m.CONFIRMED_ACC])
    old.to_csv(tmp_path / "trials.csv", index=False)
    with pytest.raises(UserError, match="lacks confirmed_acc"):
        read_trials(tmp_path / "trials.csv")


def test_best_joins_the_fold_models_into_one_ensemble(fake_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(fake_run, run_dir)
    table = read_trials(run_dir / "trials.csv")
    winner = ranked(table).iloc[0]
    original = load_model(run_dir / winner["checkpoint"])
    keys = ("num_layers", "hidden_size", "dropout", "forget_bias", "patch")
    config = LSTMConfig.from_dict({k: winner[k] for k in keys})
    shape = SeriesShape(28, 10, (0.0,) * 28, (255.0,) * 28)
    folds = [SequenceLSTM(config, shape) for _ in range(2)]  # fresh initialisations
    about = write_best(
        RunLocation.open(tmp_path, "run"),
        table,
        {winner["trial_id"]: [f.state_dict() for f in folds]},
    )
    assert about["members"] == 3
    model = load_best(run_dir).model
    assert isinstance(model, Ensemble) and len(model.members) == 3
    digits = torch.rand(4, 28, 28) * 255
    members = [original, *(f.eval() for f in folds)]
    expected = torch.stack([m(digits).softmax(-1) for m in members]).mean(0)  # (B, T, C)
    assert torch.allclose(model(digits).exp(), expected, atol=1e-6)


class InProcessRay:
    """The part of Ray's API that `confirm` uses, run here in order: `confirm`'s choices
    (which trials, in which order, with which seeds and resources) without a cluster."""

    def __init__(self):
        self.options: dict = {}
        self.calls: list[tuple] = []  # each task's arguments, in the order submitted
        self.results: list[FoldResult] = []

    def put(self, value):
        return value

    def get(self, refs):
        return list(refs)

    def remote(self, function):
        ray = self

        class Task:
            def options(self, **options):
                ray.options = options
                return self

            def remote(self, *args):
                ray.calls.append(args)
                ray.results.append(function(*args))
                return ray.results[-1]

        return Task()


def test_confirm_retrains_the_top_trials_longest_first_on_fresh_folds():
    data = unequal_toy()
    base = {**SEED_CONFIG, "hidden_size": 8, "patch": 3, "batch_size": 32, "lr": 3e-3}
    table = pd.DataFrame(
        [
            # trial, accuracy, seconds over epochs, best epoch, threshold, status
            ("short", 0.9, 2.0, 2, 1, 0.8, "completed"),
            ("long", 0.8, 9.0, 3, 2, 0.7, "stopped"),
            ("third", 0.7, 99.0, 3, 3, 0.9, "completed"),  # outside the top 2
            ("failed", 0.95, 99.0, 3, 3, 0.9, "failed"),  # never ranked
        ],
        columns=[
            "trial_id",
            m.VAL_ACC,
            "seconds",
            "epochs",
            "best_epoch",
            m.VAL_THRESHOLD,
            "status",
        ],
    ).assign(**base, **{m.VAL_LOSS: 0.5})
    ray = InProcessRay()
    saved_threads = torch.get_num_threads()  # each task sets torch's threads in this process
    try:
        with mock.patch("search.confirm.ray", ray):
            confirmation = confirm(
                table,
                data,
                top=2,
                folds=2,
                seed=5,
                cpus=1.5,
                gpus=0.5,
                metric=m.VAL_ACC,
                loss="all",
            )
    finally:
        torch.set_num_threads(saved_threads)

    assert ray.options == {"num_cpus": 1.5, "num_gpus": 0.5}
    held = confirmation_folds(data, 2, seed=5)
    # Longest first: "long" costs 9 s / 3 epochs x 2 epochs, "short" 2 s / 3 x 1.
    expected = [("long", 2, 0.7, k) for k in (0, 1)] + [("short", 1, 0.8, k) for k in (0, 1)]
    assert len(ray.calls) == len(expected)
    for args, (trial, epochs, threshold, k) in zip(ray.calls, expected, strict=True):
        config, epochs_run, fold_data, rule, seed, threads, loss, epoch_folds = args
        assert config == hyperparameters(table.set_index("trial_id").loc[trial].to_dict())
        # A whole CPU's thread per task: 1.5 CPUs train on one thread.
        assert (epochs_run, rule, threads, loss, epoch_folds) == (epochs, threshold, 1, "all", 1)
        assert seed == 5 + 1000 * (k + 1)  # each fold its own initialisation
        assert torch.equal(fold_data.folds[0][1], held[k][1])  # the confirmation's folds
    # Figures per trial from its own folds, in the table's rows and order; the rest NaN.
    out = confirmation.table.set_index("trial_id")
    assert list(confirmation.table["trial_id"]) == list(table["trial_id"])
    for trial, results in (("long", ray.results[:2]), ("short", ray.results[2:])):
        for column, value in confirmed_figures(results, seed=5).items():
            assert out.loc[trial, column] == (
                pytest.approx(value) if isinstance(value, float) else value
            )
        assert confirmation.models[trial] == [r.model for r in results]
    assert out.loc[["third", "failed"], CONFIRMED_COLUMNS].isna().all().all()
    assert confirmation.busy_seconds == pytest.approx(sum(r.busy_seconds for r in ray.results))
    # Fresh folds, fresh models: no two of the four are the same network.
    weights = [r.model["lstm.weight_ih_l0"] for r in ray.results]
    assert not any(torch.equal(a, b) for i, a in enumerate(weights) for b in weights[i + 1 :])


def test_the_hm_interval_is_a_seeded_bootstrap_over_the_series():
    rng = np.random.default_rng(0)
    right = rng.random(60) < 0.7
    read = rng.uniform(0.2, 0.6, 60)
    low, high = _bootstrap_hm(right, read, seed=3)
    assert (low, high) == _bootstrap_hm(right, read, seed=3)  # the same seed, the same
    assert (low, high) != _bootstrap_hm(right, read, seed=4)
    # The 2.5 and 97.5 percentiles of the HM over 2,000 resamples of the 60 series.
    picks = np.random.default_rng(3).integers(0, 60, size=(2000, 60))
    acc, timeliness = right[picks].mean(1), 1 - read[picks].mean(1)
    hms = 2 * acc * timeliness / (acc + timeliness)
    assert (low, high) == pytest.approx(tuple(np.percentile(hms, [2.5, 97.5])))


def test_the_hm_interval_reflects_each_figure_s_spread():
    # Only the accuracy varies, or only the earliness: either spread widens the interval.
    varied = np.arange(40) % 4 != 0
    low, high = _bootstrap_hm(varied, np.full(40, 0.5), seed=0)
    assert low < harmonic_mean(0.75, 0.5) < high
    low, high = _bootstrap_hm(np.ones(40, bool), np.where(varied, 0.2, 0.6), seed=0)
    assert low < harmonic_mean(1.0, 0.3) < high
    # Every series counts, the first included: one right answer in 20 is not zero.
    alone = np.arange(20) == 0
    assert _bootstrap_hm(alone, np.full(20, 0.5), seed=0)[1] > 0
    # Low figures (accuracy and timeliness about 0.3) are not rounded to zero, and a
    # model that is never right and reads every series whole has an HM of exactly 0.
    low, high = _bootstrap_hm(np.arange(30) % 10 < 3, np.full(30, 0.7), seed=0)
    assert 0 < low < harmonic_mean(0.3, 0.7) < high
    assert _bootstrap_hm(np.zeros(10, bool), np.ones(10), seed=0) == (0.0, 0.0)


def test_the_area_interval_stays_inside_zero_and_one():
    whole = FoldResult(10, 1.0, [True] * 10, [1.0] * 9 + [0.0], [True] * 10, [0.5] * 10)
    figures = confirmed_figures([whole])
    assert figures[m.CONFIRMED_AREA] == pytest.approx(0.9)
    assert figures[m.CONFIRMED_AREA_HIGH] == 1.0 and figures[m.CONFIRMED_AREA_LOW] < 0.9
    # The HM's interval is seeded: the same folds give the same figures.
    assert confirmed_figures([whole], seed=7) == confirmed_figures([whole], seed=7)


def test_a_fold_s_epochs_are_as_long_as_the_search_s():
    # Under cross-validation a search's epoch shares its series among the folds: the
    # confirmation trains its fold with epochs that short, so equal epochs mean equal work.
    data = unequal_toy()
    config = {**SEED_CONFIG, "hidden_size": 8, "batch_size": 16}
    whole, half = (
        train_on_fold(config, 1, TrialData.of(data), 0.75, seed=1, threads=1, epoch_folds=k)
        for k in (1, 2)
    )
    assert not torch.equal(whole.model["lstm.weight_hh_l0"], half.model["lstm.weight_hh_l0"])


def test_confirm_takes_the_top_by_the_run_s_metric_and_starts_the_costliest_first():
    """Which trials, in which order: the tasks answer at once here (no training)."""
    table = pd.DataFrame(
        [
            # trial, accuracy, area, seconds, epochs, best epoch (cost: s / epochs * best)
            ("cheap", 0.99, 0.50, 1.0, 2, 1),  # 0.5 s: best by accuracy, not by area
            ("mid", 0.80, 0.60, 3.0, 2, 1),  # 1.5 s
            ("one-epoch", 0.80, 0.61, 2.0, 1, 1),  # 2 s
            ("long", 0.80, 0.62, 4.0, 4, 3),  # 3 s
            ("untimed", 0.80, 0.63, float("nan"), 2, 2),  # no time recorded: last
            ("small", 0.80, 0.64, 1.0, 2, 1),  # 0.5 s
        ],
        columns=["trial_id", m.VAL_ACC, m.VAL_AREA, "seconds", "epochs", "best_epoch"],
    ).assign(**SEED_CONFIG, **{m.VAL_LOSS: 0.5, "status": "completed"})
    table[m.VAL_THRESHOLD] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # tells the tasks apart
    ray = InProcessRay()
    answer = FoldResult(10, 1.0, [True] * 10, [1.0] * 10, [True] * 10, [0.5] * 10, {})
    with (
        mock.patch("search.confirm.ray", ray),
        mock.patch("search.confirm.train_on_fold", lambda *args: answer),
    ):
        confirmed = confirm(
            table,
            unequal_toy(),
            top=5,
            folds=1,
            seed=0,
            cpus=1,
            gpus=0,
            metric=m.VAL_AREA,
            loss="last",
        ).table
    by_threshold = dict(zip(table[m.VAL_THRESHOLD], table["trial_id"], strict=True))
    started = [by_threshold[args[3]] for args in ray.calls]  # one fold: a task per trial
    assert started == ["long", "one-epoch", "mid", "small", "untimed"]
    assert [args[1] for args in ray.calls] == [3, 1, 1, 1, 2]  # each its best epochs
    assert confirmed.set_index("trial_id")[m.CONFIRMED_AREA].isna().to_dict() == {
        "cheap": True,
        "mid": False,
        "one-epoch": False,
        "long": False,
        "untimed": False,
        "small": False,
    }
