"""A run folder built by hand, without Ray: what the analysis tests read in seconds.

Each trial is a real model trained with `models.train.fit` on tiny synthetic digits, and
every file is written through `search.run_folder`, so the folder honours the same
contract a real search's does: run.json, trials.csv, test_split.pt, and per trial a
`result.json` (one JSON line per epoch, as Tune writes it) and a best-epoch checkpoint.
The trials cover every outcome: completed, stopped early, diverged and failed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch

from models.train import build, fit, to_inputs
from search import metrics as m
from search.config import SearchConfig
from search.data import load_dataset
from search.run_folder import (
    CHECKPOINT_FILE,
    RESULT_JSON,
    TRIAL_COLUMNS,
    TrialStatus,
    checkpoint_state,
    new_run_info,
    trial_dir,
    write_run_info,
    write_test_split,
    write_trials,
)
from search.space import SEED_CONFIG, SEED_LABEL, is_seed
from search.storage import RunLocation
from tests.conftest import write_idx_folder

MAX_EPOCHS = 3

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


def build_run(
    storage: Path,
    name: str = "fake",
    seed: int = 1,
    objective: str = "accuracy",
    loss: str = "last",
) -> Path:
    """Write a finished run folder `storage/name` of a search for `objective`, trained
    with `loss`, and return its path."""
    data_dir = write_idx_folder(storage / f"{name}-digits", n_train=300, n_test=60, seed=seed)
    data = load_dataset("mnist", data_dir, seed=seed)
    config = SearchConfig(
        trials=len(TRIALS),
        dataset="mnist",
        data_dir=data_dir,
        max_epochs=MAX_EPOCHS,
        name=name,
        storage_path=str(storage),
        seed=seed,
        objective=objective,
        loss=loss,
    )
    run = RunLocation.open(storage, name)
    run.create()
    info = new_run_info(config, data.name, data.sizes())
    info["command"] = f"python -m search.run --name {name} --seed {seed}"
    write_test_split(run, data.test)

    train = to_inputs(data.train.images), data.train.labels
    val = to_inputs(data.val.images), data.val.labels
    started = time.time()
    metric = m.primary_metric(objective)
    rows = [
        _trial(Path(run.path), trial_id, params, epochs, train, val, seed, started, metric, loss)
        for trial_id, params, epochs in TRIALS
    ]
    write_trials(pd.DataFrame(rows, columns=TRIAL_COLUMNS), run)
    statuses = pd.Series([r["status"] for r in rows]).value_counts().to_dict()
    info.update(finished=info["started"], wall_seconds=12.5, trial_counts=statuses, sessions=1)
    write_run_info(run, info)
    return Path(run.path)


def _trial(
    run_dir: Path, trial_id, params, epochs, train, val, seed, started, metric, loss
) -> dict:
    folder = run_dir / trial_dir(trial_id)
    folder.mkdir()
    row = {
        **params,
        "trial_id": trial_id,
        "label": SEED_LABEL if is_seed(params) else "",
        "node": "fake-node",
        "epochs": 0,
    }
    if epochs is None:
        (folder / RESULT_JSON).write_text("")
        return {**row, "status": TrialStatus.FAILED.value, "error": "RuntimeError: boom"}

    model, optimizer = build(params, seed)
    row[m.PARAM_COUNT] = model.parameter_count
    records, best = [], None
    loop = fit(
        model,
        optimizer,
        train,
        val,
        batch_size=params["batch_size"],
        epochs=epochs,
        seed=seed,
        loss=loss,
    )
    for result in loop:
        record = {
            m.EPOCH: result.epoch,
            m.TRAIN_LOSS: result.train_loss,
            m.DIVERGED: result.diverged,
            "time_total_s": result.epoch * 0.5,
            "timestamp": started + len(records) + int(trial_id[-1]),
        }
        if not result.diverged:
            record.update(
                {
                    m.VAL_ACC: result.val.acc,
                    m.VAL_LOSS: result.val.loss,
                    m.VAL_ACC_BY_STEP: result.val.acc_by_step,
                    m.VAL_AUC_ROWS: result.val.auc_rows,
                    m.VAL_ROWS_TO_50: result.val.first_row_reaching(0.5),
                    m.VAL_ROWS_TO_90: result.val.first_row_reaching(0.9),
                    m.EPOCH_SECONDS: result.seconds,
                }
            )
            if best is None or record[metric] > best[metric]:
                best = record
                checkpoint = folder / f"checkpoint_{result.epoch:06d}" / CHECKPOINT_FILE
                checkpoint.parent.mkdir()
                state = checkpoint_state(model, optimizer, result.epoch, result.val.acc)
                torch.save(state, checkpoint)
                row["checkpoint"] = str(checkpoint.relative_to(run_dir))
        else:
            record[m.VAL_ACC] = 0.0
        records.append(record)
    (folder / RESULT_JSON).write_text("".join(json.dumps(r) + "\n" for r in records))

    last = records[-1]
    row.update(epochs=last[m.EPOCH], seconds=last["time_total_s"], error="")
    if last[m.DIVERGED]:
        row.pop("checkpoint", None)
        return {**row, "status": TrialStatus.DIVERGED.value}
    status = TrialStatus.COMPLETED if last[m.EPOCH] >= MAX_EPOCHS else TrialStatus.STOPPED
    row.update(
        status=status.value,
        best_epoch=best[m.EPOCH],
        val_acc=best[m.VAL_ACC],
        val_loss=best[m.VAL_LOSS],
        val_acc_by_step=json.dumps(best[m.VAL_ACC_BY_STEP]),
        **{k: best[k] for k in (m.VAL_AUC_ROWS, m.VAL_ROWS_TO_50, m.VAL_ROWS_TO_90)},
    )
    return row
