"""A run folder built by hand, without Ray: what the analysis tests read in seconds.

Each trial is a real model (or one per fold) trained with `models.train.fit` on tiny
synthetic data, and every file is written through `search.run_folder`, so the folder
honours the same contract a real search's does: run.json, trials.csv, test_split.pt,
study.db, and per trial a `result.json` (one JSON line per epoch, as Tune writes it) and
a best-epoch checkpoint. The trials cover every outcome: completed, stopped early,
diverged and failed.

Two kinds of data (`kind`):
- "image": MNIST-format digits (28 rows of 28 pixels, classes 0-9), one validation split;
- "series": three channels of unequal lengths, string class labels, a searched `patch`,
  judged by 2-fold cross-validation (so each checkpoint holds two models).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import optuna
import pandas as pd
import torch

from models import train
from models.train import Fold, build, fit, fold_seed
from search import metrics as m
from search import study as st
from search.config import SearchConfig
from search.data import Dataset, load_dataset
from search.run_folder import (
    ANYTIME_COLUMNS,
    CHECKPOINT_FILE,
    EARLY_COLUMNS,
    RESULT_JSON,
    STUDY_TRIAL,
    TRIAL_COLUMNS,
    TrialStatus,
    checkpoint_state,
    trial_dir,
    write_test_split,
    write_trials,
)
from search.run_record import RunRecord, StudyRecord
from search.space import SEED_CONFIG, SEED_LABEL, SearchSpace, hyperparameters, is_seed
from search.storage import RunLocation
from tests.conftest import write_idx_folder

MAX_EPOCHS = 3
KINDS = ("image", "series")

# (trial id, configuration, epochs to train or None to fail at once). Small networks, so
# the whole folder trains in a few seconds.
TRIALS = [
    ("a0000001", SEED_CONFIG, MAX_EPOCHS),
    ("a0000002", {**SEED_CONFIG, "hidden_size": 24, "lr": 8e-3, "batch_size": 32}, MAX_EPOCHS),
    ("a0000003", {**SEED_CONFIG, "num_layers": 2, "hidden_size": 16, "dropout": 0.2}, 1),
    ("a0000004", {**SEED_CONFIG, "hidden_size": 16, "lr": 1e-4, "forget_bias": 2.5}, 1),
    ("a0000005", {**SEED_CONFIG, "hidden_size": 16, "lr": 1e36}, MAX_EPOCHS),  # diverges
    ("a0000006", {**SEED_CONFIG, "num_layers": 3, "hidden_size": 32}, None),  # fails
]

# The series kind: patches searched, as a real search does on long series (forced here on
# short ones, to keep the folder fast).
PATCHES = (1, 2, 4)
SERIES_CLASSES = ("walk", "run", "cycle on an ergometer")  # one long name, for the labels
SERIES_TRIALS = [
    (f"b{trial_id[1:]}", {**config, "patch": patch}, epochs)
    for (trial_id, config, epochs), patch in zip(TRIALS, (1, 4, 2, 2, 1, 4), strict=True)
]
# Small batches, so that the huge learning rate takes enough steps to diverge.
SERIES_TRIALS[4][1]["batch_size"] = 32


def build_run(
    storage: Path,
    name: str = "fake",
    seed: int = 1,
    objective: str = "accuracy",
    loss: str = "last",
    kind: str = "image",
) -> Path:
    """Write a finished run folder `storage/name` of a search for `objective`, trained
    with `loss` on data of `kind` (KINDS), and return its path."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "image":
        data_dir = write_idx_folder(storage / f"{name}-digits", n_train=300, n_test=60, seed=seed)
        data = load_dataset("mnist", data_dir, seed=seed, cv_folds=0)
        space, trials = SearchSpace.for_length(data.length), TRIALS
        where = {"dataset": "mnist", "data_dir": data_dir, "cv_folds": 0}
    else:
        path = write_series_file(storage / f"{name}-series.npz", seed)
        data = load_dataset(str(path), seed=seed, cv_folds=2)
        space, trials = SearchSpace(PATCHES), SERIES_TRIALS
        where = {"dataset": str(path), "cv_folds": 2}
    config = SearchConfig(
        trials=len(trials),
        max_epochs=MAX_EPOCHS,
        name=name,
        storage_path=str(storage),
        seed=seed,
        objective=objective,
        loss=loss,
        **where,
    )
    run = RunLocation.open(storage, name)
    run.create()
    info = RunRecord.new(config, data.describe(), data.sizes(), space.to_dict())
    info.command = f"python -m search.run --name {name} --seed {seed}"
    info.study = StudyRecord(None, name, run=f"{name}@{info.started}", sampler_seed=seed)
    write_test_split(run, data.test)
    ref = st.StudyRef.in_run_folder(run.path, name)
    study = st.prepare(ref, st.signature(data.name, loss, objective, space))

    started = time.time()
    rows = []
    # One pass over the few training series per epoch: the search's minimum epoch size
    # would make this folder take minutes, and the analysis reads it the same either way.
    with mock.patch.object(train, "MIN_EPOCH_SERIES", 1):
        for trial_id, params, epochs in trials:
            row, curve = _trial(Path(run.path), trial_id, params, epochs, data, config, started)
            row[STUDY_TRIAL] = _tell(study, space, info.study.run, row, curve, objective)
            rows.append(row)
    write_trials(pd.DataFrame(rows, columns=TRIAL_COLUMNS), run)
    statuses = pd.Series([r["status"] for r in rows]).value_counts().to_dict()
    info.finished, info.wall_seconds, info.trial_counts, info.sessions = (
        info.started,
        12.5,
        statuses,
        1,
    )
    info.save(run)
    return Path(run.path)


def write_series_file(path: Path, seed: int, n_train: int = 120, n_test: int = 45) -> Path:
    """A .npz of three-channel series of 24-48 time points with string labels: each class
    is a sine of its own frequency in its own channel, over noise."""
    rng = np.random.default_rng(seed)
    longest = 48
    arrays = {}
    for suffix, n in (("", n_train), ("_test", n_test)):
        labels = np.arange(n) % len(SERIES_CLASSES)
        rng.shuffle(labels)
        lengths = rng.integers(24, longest + 1, size=n)
        values = rng.normal(0.0, 0.3, size=(n, longest, 3))
        t = np.arange(longest)
        for i, (y, length) in enumerate(zip(labels, lengths, strict=True)):
            values[i, :, y] += 2.0 * np.sin(2 * np.pi * (y + 1) * t / 24)
            values[i, length:] = 0.0  # past its end: padding, ignored through `lengths`
        arrays[f"X{suffix}"] = values.astype(np.float32)  # (N, T, F)
        arrays[f"y{suffix}"] = np.array(SERIES_CLASSES)[labels]
        arrays[f"lengths{suffix}"] = lengths.astype(np.int64)
    np.savez(path, **arrays)
    return path


def _folds(data: Dataset, params: dict, seed: int) -> list[Fold]:
    """One model per fold, as the search's trainable builds them."""
    folds = []
    for k, (train_index, val_index) in enumerate(data.folds):
        train = data.pool[train_index]
        model, optimizer = build(params, data.shape_for(train), fold_seed(seed, k))
        folds.append(Fold(model, optimizer, train.tensors(), data.pool[val_index].tensors()))
    return folds


def _trial(
    run_dir: Path,
    trial_id: str,
    params: dict,
    epochs: int | None,
    data: Dataset,
    config: SearchConfig,
    started: float,
) -> tuple[dict, list[float]]:
    """Train one trial; returns its trials.csv row and its primary objective per epoch."""
    metric = m.primary_metric(config.objective)
    folder = run_dir / trial_dir(trial_id)
    folder.mkdir()
    row = {
        **hyperparameters(params),
        "trial_id": trial_id,
        "label": SEED_LABEL if is_seed(params) else "",
        m.NODE: "fake-node",
        m.DEVICE: "cpu",
        "epochs": 0,
        "checkpoint": "",
    }
    if epochs is None:
        (folder / RESULT_JSON).write_text("")
        return {**row, "status": TrialStatus.FAILED.value, "error": "RuntimeError: boom"}, []

    folds = _folds(data, params, config.seed)
    row[m.PARAM_COUNT] = folds[0].model.parameter_count
    records, best = [], None
    loop = fit(
        folds,
        batch_size=params["batch_size"],
        epochs=epochs,
        seed=config.seed,
        loss=config.loss,
    )
    for result in loop:
        record = {
            m.EPOCH: result.epoch,
            m.TRAIN_LOSS: result.train_loss,
            m.DIVERGED: result.diverged,
            "time_total_s": result.epoch * 0.5,
            "timestamp": started + len(records) + int(trial_id[-1]),
        }
        if result.diverged:
            record.update({m.VAL_ACC: 0.0, m.VAL_AREA: 0.0, m.VAL_HM: 0.0})
            records.append(record)
            break
        val = result.val
        record.update(
            {
                m.VAL_ACC: val.acc,
                m.VAL_LOSS: val.loss,
                m.VAL_ACC_BY_STEP: val.acc_by_step,
                m.VAL_ACC_BY_SHARE: val.acc_by_share,
                m.VAL_AREA: val.area,
                m.VAL_STEPS_TO_50: val.first_step_reaching(0.5),
                m.VAL_STEPS_TO_90: val.first_step_reaching(0.9),
                m.VAL_HM: val.early.hm,
                m.VAL_EARLY_ACC: val.early.accuracy,
                m.VAL_EARLINESS: val.early.earliness,
                m.VAL_THRESHOLD: val.early.threshold,
                m.EPOCH_SECONDS: result.seconds,
            }
        )
        records.append(record)
        if best is None or record[metric] > best[metric]:
            best = record
            checkpoint = folder / f"checkpoint_{result.epoch:06d}" / CHECKPOINT_FILE
            checkpoint.parent.mkdir()
            state = checkpoint_state(
                [f.model for f in folds],
                [f.optimizer for f in folds],
                result.epoch,
                record[metric],
            )
            torch.save(state, checkpoint)
            row["checkpoint"] = str(checkpoint.relative_to(run_dir))
    (folder / RESULT_JSON).write_text("".join(json.dumps(r) + "\n" for r in records))

    last = records[-1]
    row.update(epochs=last[m.EPOCH], seconds=last["time_total_s"], error="")
    curve = [r[metric] for r in records]
    if last[m.DIVERGED]:
        return {**row, "status": TrialStatus.DIVERGED.value, "checkpoint": ""}, curve
    status = TrialStatus.COMPLETED if last[m.EPOCH] >= MAX_EPOCHS else TrialStatus.STOPPED
    row.update(
        status=status.value,
        best_epoch=best[m.EPOCH],
        **{k: best[k] for k in (m.VAL_ACC, m.VAL_LOSS, *ANYTIME_COLUMNS, *EARLY_COLUMNS)},
        **{k: json.dumps(best[k]) for k in (m.VAL_ACC_BY_STEP, m.VAL_ACC_BY_SHARE)},
    )
    return row, curve


def _tell(
    study: optuna.Study,
    space: SearchSpace,
    run: str,
    row: dict,
    curve: list[float],
    objective: str,
) -> int | None:
    """Add the trial to the run's Optuna study as the search tells Optuna: every epoch as
    an intermediate value (single-objective studies), COMPLETE at its best epoch (at 0
    when it diverged), PRUNED when ASHA stopped it, FAIL after an error."""
    metrics = [metric for metric, _ in m.objective_metrics(objective)]
    single = len(metrics) == 1
    status = row["status"]
    state, values = optuna.trial.TrialState.COMPLETE, None
    if status == TrialStatus.FAILED:
        state = optuna.trial.TrialState.FAIL
    elif status == TrialStatus.STOPPED:
        state = optuna.trial.TrialState.PRUNED
    elif status == TrialStatus.DIVERGED:
        values = [0.0 if k != m.PARAM_COUNT else float(row[m.PARAM_COUNT]) for k in metrics]
    else:
        values = [float(row[k]) for k in metrics]
    distributions = space.distributions()
    try:
        trial = optuna.trial.create_trial(
            state=state,
            values=values,
            params={k: row[k] for k in space.params},
            distributions={k: distributions[k] for k in space.params},
            intermediate_values=dict(enumerate(curve, start=1)) if single else None,
            user_attrs={st.RUN_ATTR: run, st.TUNE_ID_ATTR: row["trial_id"]},
        )
    except ValueError:  # the forced divergence's learning rate lies outside the space
        return None
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1].number
