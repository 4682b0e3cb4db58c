"""What the flags promise, checked by what they do (issue 27), in seconds and without Ray.

The trainable runs in this process, with Tune's session replaced by a recorder; ASHA is
driven through its public scheduler interface; the winner is chosen from trials tables
written here. Each test fails if its flag were ignored or its value hard-coded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from ray.tune.schedulers import TrialScheduler

import models.train
import search.confirm
import search.run
import search.trainable
from analysis import results
from models.train import build
from search import metrics as m
from search.config import parse_args
from search.confirm import FoldResult, confirm, confirmed_figures
from search.data import Dataset, Scaling, Split
from search.run_folder import (
    CHECKPOINT_FILE,
    TRIAL_COLUMNS,
    TRIALS_CSV,
    checkpoint_state,
    load_checkpoint,
    read_trials,
    write_best,
    write_trials,
)
from search.run_record import RunRecord
from search.space import SearchSpace, hyperparameters
from search.storage import RunLocation
from search.tuner import early_stopping, run_config, trainable

# A network small enough that an epoch (4,000 series of 8 steps) takes a fraction of a second.
TINY = {
    "num_layers": 1,
    "hidden_size": 8,
    "dropout": 0.0,
    "forget_bias": 1.0,
    "lr": 1e-2,
    "batch_size": 32,
}


def toy_data(n: int = 200, steps: int = 8) -> Dataset:
    """Two classes, told apart at step 1 (value +-1) and again, reversed and three times
    stronger, at the last step. Trained on the last step only, a model takes that
    shortcut and says the wrong class at step 1; trained on every step, it must keep
    step 1's evidence and answers from the start."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    sign = (2 * labels - 1).float()
    values = 0.5 * torch.randn(n, steps, 1, generator=generator)  # (N, T, F)
    values[:, 0, 0] += sign
    values[:, -1, 0] -= 3 * sign
    pool = Split(values, torch.full((n,), steps), labels)
    index = torch.arange(n)
    folds = ((index[index % 5 != 0], index[index % 5 == 0]),)  # one validation split
    return Dataset("toy", pool, pool[:10], (0, 1), folds, Scaling())


class FakeTune:
    """What train_lstm asks of Tune's session: no checkpoint to resume from, and a report()
    that records each epoch's metrics, the threads torch trains with and the weights."""

    def __init__(self) -> None:
        self.reports: list[dict] = []
        self.Checkpoint = SimpleNamespace(from_directory=self._read)

    def get_checkpoint(self):
        return None

    def report(self, metrics: dict, checkpoint=None) -> None:
        self.reports.append({**metrics, "threads": torch.get_num_threads(), "state": checkpoint})

    @staticmethod
    def _read(folder: str) -> dict:
        # The trainable deletes the folder once report() returns: read it now.
        return load_checkpoint(Path(folder) / CHECKPOINT_FILE)


@pytest.fixture
def session(monkeypatch):
    fake = FakeTune()
    monkeypatch.setattr(search.trainable, "tune", fake)
    node = SimpleNamespace(get_node_id=lambda: "this-node")
    monkeypatch.setattr(
        search.trainable,
        "ray",
        SimpleNamespace(is_initialized=lambda: False, get_runtime_context=lambda: node),
    )
    threads = torch.get_num_threads()  # trials set it for the whole process
    yield fake
    torch.set_num_threads(threads)


def train(session: FakeTune, *flags: str, searched: dict = TINY) -> list[dict]:
    """One epoch of the `searched` configuration through the trainable the Tuner gets
    for these command-line flags."""
    session.reports.clear()
    config = parse_args([*flags, "--max-epochs", "1"])
    trainable(config, toy_data())(searched)
    return list(session.reports)


# ---------------------------------------------------------------- the trainable


def test_the_loss_flag_decides_whether_early_steps_are_learnt(session):
    last = train(session, "--loss", "last")[0]
    every = train(session, "--loss", "all")[0]
    # Both know the class after the last step; only the every-step loss at step 1.
    assert last[m.VAL_ACC] > 0.9 and every[m.VAL_ACC] > 0.9
    assert last[m.VAL_ACC_BY_STEP][0] < 0.5 < 0.9 < every[m.VAL_ACC_BY_STEP][0]
    assert every[m.VAL_AREA] > last[m.VAL_AREA] + 0.3


@pytest.mark.parametrize(("cpus", "threads"), [("2.5", 2), ("1", 1)])
def test_cpus_per_trial_sets_the_threads_a_trial_trains_with(session, monkeypatch, cpus, threads):
    monkeypatch.setattr(models.train, "MIN_EPOCH_SERIES", 1)  # one short pass is enough here
    torch.set_num_threads(threads + 1)  # what a trial that set nothing would keep
    assert train(session, "--cpus-per-trial", cpus)[0]["threads"] == threads


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_seed_seeds_the_models(session):
    # At a learning rate of 0, the epoch's checkpoint holds the weights as initialised.
    still = {**TINY, "lr": 0.0}
    first, again, other = (
        train(session, "--seed", seed, searched=still)[0]["state"]["models"][0]
        for seed in ("0", "0", "1")
    )
    assert same(first, again) and not same(first, other)
    # Trained, the same seed gives the same epoch (its batches are seeded too), another not.
    first, again, other = (train(session, "--seed", seed)[0] for seed in ("0", "0", "1"))
    assert same(first["state"]["models"][0], again["state"]["models"][0])
    assert (first[m.TRAIN_LOSS], first[m.VAL_LOSS]) == (again[m.TRAIN_LOSS], again[m.VAL_LOSS])
    assert first[m.TRAIN_LOSS] != other[m.TRAIN_LOSS]


# ---------------------------------------------------------------- --objective

# Trial id: (validation accuracy, area under the accuracy-by-step curve).
TRADE_OFF = {
    "sharp": (0.95, 0.60),  # the most accurate after the last step, late to know
    "early": (0.90, 0.80),  # knows sooner, less accurate in the end
    "behind": (0.85, 0.55),  # worse on both: on no Pareto front
}


@pytest.mark.parametrize(
    ("objective", "metric"), [("anytime", m.VAL_AREA), ("accuracy", m.VAL_ACC)]
)
def test_asha_and_the_checkpoints_judge_a_trial_by_the_objective(session, objective, metric):
    report = train(session, "--objective", objective)[0]
    assert report[m.VAL_AREA] != report[m.VAL_ACC]  # else this test could not tell
    assert report[m.RANK_SCORE] == m.rank_score(report[metric], report[m.VAL_LOSS])
    assert report["state"]["value"] == report[metric]


def run_folder(storage: Path, objective: str):
    """A finished run folder of a search for `objective` over TRADE_OFF's trials, all of
    TINY's configuration and sharing one checkpoint; returns (its path, its config)."""
    config = parse_args(["--objective", objective, "--storage-path", str(storage)])
    run = RunLocation.open(config.storage_path, config.name)
    run.create()
    data = toy_data()
    space = SearchSpace.for_length(data.length).to_dict()
    RunRecord.new(config, data.describe(), data.sizes(), space).save(run)
    model, optimizer = build(TINY, data.shape_for(data.train), seed=0)
    torch.save(checkpoint_state([model], [optimizer], 1, 0.0), Path(run.path) / CHECKPOINT_FILE)
    rows = [
        {
            **hyperparameters(TINY),
            "trial_id": trial_id,
            "status": "completed",
            "epochs": 1,
            "best_epoch": 1,
            "seconds": 1.0,
            m.VAL_ACC: acc,
            m.VAL_LOSS: 0.3,
            m.VAL_AREA: area,
            m.VAL_THRESHOLD: 0.9,
            "checkpoint": CHECKPOINT_FILE,
        }
        for trial_id, (acc, area) in TRADE_OFF.items()
    ]
    write_trials(pd.DataFrame(rows, columns=TRIAL_COLUMNS), run)
    return Path(run.path), config


def kept_by(config, folder: Path) -> tuple[str, str]:
    """What Tune keeps a trial's best checkpoint by, under run_config's rule (Tune's
    public CheckpointConfig; which checkpoint that keeps is Tune's own business)."""
    kept = run_config(config, str(folder), []).checkpoint_config
    return kept.checkpoint_score_attribute, kept.checkpoint_score_order


@pytest.mark.parametrize(
    ("objective", "winner", "kept_by_metric"),
    [("accuracy", "sharp", m.VAL_ACC), ("anytime", "early", m.VAL_AREA)]
    + [("accuracy+anytime", "sharp", m.VAL_ACC)],
)
def test_the_objective_chooses_the_winner_and_the_checkpoint_kept(
    tmp_path, objective, winner, kept_by_metric
):
    path, config = run_folder(tmp_path / "runs", objective)
    # As search.driver.run chooses best/: by the objective's primary metric.
    metric = m.primary_metric(config.objective)
    run = RunLocation.open(path.parent, path.name)
    best = write_best(run, read_trials(path / TRIALS_CSV), metric=metric)
    assert best["trial_id"] == winner
    # The report finds the same winner from run.json alone.
    assert results.ranked_top(results.load_run(path), 1)["trial_id"].tolist() == [winner]
    assert kept_by(config, tmp_path) == (kept_by_metric, "max")


def test_a_two_objective_search_shows_its_pareto_front(tmp_path):
    both = results.load_run(run_folder(tmp_path / "both", "accuracy+anytime")[0])
    assert set(results.pareto_front(both)["trial_id"]) == {"sharp", "early"}
    # The best by accuracy, then the trade-off the front holds, however few are asked for.
    assert results.selected(both, top_k=1)["trial_id"].tolist() == ["sharp", "early"]
    one = results.load_run(run_folder(tmp_path / "one", "accuracy")[0])
    assert results.pareto_front(one).empty
    assert results.selected(one, top_k=1)["trial_id"].tolist() == ["sharp"]


class InlineRay:
    """search.confirm's Ray calls, run in this process: values pass through put and get,
    and a remote task runs at once."""

    put = staticmethod(lambda value: value)
    get = staticmethod(lambda values: values)

    @staticmethod
    def remote(function):
        task = SimpleNamespace(remote=function)
        return SimpleNamespace(options=lambda **resources: task)


def test_an_anytime_search_confirms_its_winner_by_the_area(tmp_path, monkeypatch):
    monkeypatch.setattr(search.confirm, "ray", InlineRay)
    path, config = run_folder(tmp_path / "runs", "anytime")
    metric = m.primary_metric(config.objective)
    table = confirm(
        read_trials(path / TRIALS_CSV),
        toy_data(),
        top=2,
        folds=None,
        seed=0,
        cpus=1,
        gpus=0,
        metric=metric,
        loss=config.loss,  # "all", the anytime objective's: every step is learnt
    ).table.set_index("trial_id")
    confirmed = table[table[m.CONFIRMED_AREA].notna()]
    assert set(confirmed.index) == {"early", "sharp"}  # the best two by the area
    low, area, high = (
        confirmed[k] for k in (m.CONFIRMED_AREA_LOW, m.CONFIRMED_AREA, m.CONFIRMED_AREA_HIGH)
    )
    assert (area > 0.9).all() and (low <= area).all() and (area <= high).all()
    best = write_best(RunLocation.open(path.parent, path.name), table.reset_index(), metric=metric)
    assert (best["trial_id"], best["chosen_by"]) == ("early", m.CONFIRMED_AREA)


def test_the_confirmed_area_has_a_normal_interval_over_series():
    shares = [0.8, 0.8, 0.6, 0.6]  # each series' share of steps read right
    fold = FoldResult(4, 1.0, [True] * 4, shares, [True] * 4, [0.5] * 4)
    figures = confirmed_figures([fold])
    half = 1.959964 * 0.1154701 / 2  # z(0.975) * sample standard deviation / sqrt(4)
    assert figures[m.CONFIRMED_AREA] == pytest.approx(0.7)
    assert figures[m.CONFIRMED_AREA_LOW] == pytest.approx(0.7 - half, abs=1e-6)
    assert figures[m.CONFIRMED_AREA_HIGH] == pytest.approx(0.7 + half, abs=1e-6)


# ---------------------------------------------------------------- --reduction-factor

UNIT = 0.5  # seconds of one tutorial epoch, under --asha-time seconds


def judge(scheduler, trial: str, time: int, score: float) -> str:
    """Tell the scheduler a trial's result after `time` epochs, each one unit long."""
    result = {m.EPOCH: time, m.TRAIN_SECONDS: time * UNIT, m.RANK_SCORE: score}
    return scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial), result)


def scheduler_for(flags: list[str], trials: list[str]):
    scheduler = early_stopping(parse_args([*flags, "--max-epochs", "20"]), unit_seconds=UNIT)
    scheduler.set_search_properties(m.RANK_SCORE, "max")  # as the Tuner's TuneConfig sets
    for trial in trials:
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial))
    return scheduler


def rungs(flags: list[str]) -> list[int]:
    """The times a trial is judged at, found by asking: a trial level with the leader until
    time t, then behind it, is stopped at t exactly when t is a rung."""
    found = []
    for t in range(1, 20):
        scheduler = scheduler_for(flags, ["leader", "probe"])
        for time in range(1, t + 1):
            judge(scheduler, "leader", time, 1.0)
            decision = judge(scheduler, "probe", time, 1.0 if time < t else 0.0)
        if decision == TrialScheduler.STOP:
            found.append(t)
    return found


def kept_at_first_rung(flags: list[str]) -> bool:
    """Five trials reach the first rung with 0.1 ... 0.5: is a sixth with 0.35 kept (in the
    best half of them, not in the best third)?"""
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.35]
    scheduler = scheduler_for(flags, [str(i) for i in range(len(scores))])
    decisions = [judge(scheduler, str(i), 2, score) for i, score in enumerate(scores)]
    return decisions[-1] == TrialScheduler.CONTINUE


@pytest.mark.parametrize("asha_time", ["epochs", "seconds"])
@pytest.mark.parametrize(
    ("factor", "at", "kept"), [("2", [2, 4, 8, 16], True), ("3", [2, 6, 18], False)]
)
def test_the_reduction_factor_spaces_the_rungs_and_keeps_the_best_share(
    asha_time, factor, at, kept
):
    flags = ["--asha-time", asha_time, "--grace-epochs", "2", "--reduction-factor", factor]
    assert rungs(flags) == at  # grace * factor^k, in epochs or units
    assert kept_at_first_rung(flags) is kept


# ---------------------------------------------------------------- --no-report


@pytest.mark.parametrize(("flags", "reported"), [([], True), (["--no-report"], False)])
def test_no_report_skips_the_report_and_only_then(tmp_path, monkeypatch, flags, reported):
    from search import driver

    monkeypatch.setattr(driver, "run", lambda config: RunLocation.open(tmp_path, config.name))
    commands = []

    def run_command(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="report/index.html\n")

    monkeypatch.setattr(
        search.run, "subprocess", SimpleNamespace(run=run_command, PIPE=subprocess.PIPE)
    )
    monkeypatch.setattr(search.run, "sigterm_as_ctrl_c", lambda: None)  # pytest's handlers stay
    assert search.run.main(["--name", "run", *flags]) == 0
    expected = [[sys.executable, "-m", "analysis.report", str(tmp_path / "run")]]
    assert commands == (expected if reported else [])


@pytest.mark.parametrize("retries", [0, 5])
def test_max_failures_is_how_often_tune_restarts_a_failing_trial(tmp_path, retries):
    config = parse_args(["--max-failures", str(retries)])
    assert run_config(config, str(tmp_path), []).failure_config.max_failures == retries
