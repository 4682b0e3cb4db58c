"""The run folder: the one contract between the search and the analysis. No Ray here.

`<storage-path>/<name>/` holds Ray Tune's experiment files plus ours:
- `run.json`: its format version, the data (classes, features, length, how the pool is
  judged), split sizes, the search space, seed, flags, command line, package versions,
  timing;
- `trials.csv`: one row per trial, its outcome, its best epoch's figures and checkpoint;
- `test_split.pt`: the held-out series, so reports need no data folder;
- `study.db`: the Optuna study (SQLite), unless the run keeps it in a database
  (`run.json`'s `study` says where);
- `trial_<id>/`: Tune's per-trial folder: `result.json` (one line per epoch) and two
  checkpoints, the trial's best epoch's and its latest;
- `best/`: the winner (see `write_best`).

This module names every file, the trial outcomes and the ranking, and reads and writes
checkpoints; the search writes through it and the analysis reads through it, so a report
needs pandas and torch, not a Ray install. Paths inside are relative to the run folder,
so the folder can move to another machine.
"""

from __future__ import annotations

import io
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from models.classifier import Classifier
from models.early import StoppingRule
from models.lstm import Ensemble, LSTMConfig, SequenceLSTM, SeriesShape
from search import metrics as m
from search.data import Split
from search.errors import UserError
from search.space import PARAMS

if TYPE_CHECKING:  # pyarrow comes with Ray; reading a run folder needs neither
    from search.storage import RunLocation

TRIALS_CSV = "trials.csv"
# The test split, as tensors, so reports evaluate on exactly the series the search
# held out, on any machine, without the original data.
TEST_SPLIT = "test_split.pt"
RESULT_JSON = "result.json"  # Ray Tune's per-trial log: one JSON line per reported epoch
CHECKPOINT_FILE = "checkpoint.pt"  # inside each of Tune's checkpoint folders
TUNER_STATE = "tuner.pkl"  # written by Ray Tune; its presence makes a folder resumable
REPORT_DIR = "report"
# The answer of the search, in one obvious place: the winner's weights and configuration.
BEST_DIR = "best"
BEST_MODEL = f"{BEST_DIR}/model.pt"  # the winner's state_dicts (see write_best)
BEST_CONFIG = f"{BEST_DIR}/config.json"  # its hyperparameters, classes, stopping rule, figures

TOP_K = 5  # configurations shown by the CLI's summary and, by default, the report


def trial_dir(trial_id: str) -> str:
    """The folder of one trial inside the run folder."""
    return f"trial_{trial_id}"


class TrialStatus(StrEnum):
    """A trial's outcome, as written in trials.csv."""

    COMPLETED = "completed"  # trained to --max-epochs
    STOPPED = "stopped"  # stopped early by ASHA: a normal outcome
    DIVERGED = "diverged"  # loss went NaN/inf; excluded from "best"
    FAILED = "failed"  # raised an error more often than the retry limit allows
    UNFINISHED = "unfinished"  # the search ended (e.g. Ctrl-C) while it was pending or running


RANKED_STATUSES = (TrialStatus.COMPLETED, TrialStatus.STOPPED)


def trial_status(
    *, failed: bool, diverged: bool, epochs: int, max_epochs: int, ended: bool
) -> TrialStatus:
    """Classify a trial from what Tune knows of it. `ended`: Tune terminated it (finished
    or stopped by the scheduler), as opposed to still pending, running or paused."""
    if failed:
        return TrialStatus.FAILED
    if diverged:
        return TrialStatus.DIVERGED
    if epochs >= max_epochs:
        return TrialStatus.COMPLETED
    if epochs > 0 and ended:
        return TrialStatus.STOPPED
    return TrialStatus.UNFINISHED


CONFIRMED_COLUMNS = [
    m.CONFIRMED_ACC,
    m.CONFIRMED_LOW,
    m.CONFIRMED_HIGH,
    m.CONFIRMED_FOLD_ACCS,
    m.CONFIRMED_AREA,
    m.CONFIRMED_AREA_LOW,
    m.CONFIRMED_AREA_HIGH,
    m.CONFIRMED_HM,
    m.CONFIRMED_HM_LOW,
    m.CONFIRMED_HM_HIGH,
    m.CONFIRMED_EARLY_ACC,
    m.CONFIRMED_EARLINESS,
]
ANYTIME_COLUMNS = [m.VAL_AREA, m.VAL_STEPS_TO_50, m.VAL_STEPS_TO_90]
EARLY_COLUMNS = [m.VAL_HM, m.VAL_EARLY_ACC, m.VAL_EARLINESS, m.VAL_THRESHOLD]
STUDY_TRIAL = "study_trial"  # the trial's number in the Optuna study (its dashboard)
TRIAL_COLUMNS = [
    "trial_id",
    "label",
    STUDY_TRIAL,
    "status",
    *PARAMS,
    m.PARAM_COUNT,
    "epochs",
    "best_epoch",
    m.VAL_ACC,
    m.VAL_LOSS,
    *ANYTIME_COLUMNS,
    *EARLY_COLUMNS,
    m.VAL_ACC_BY_STEP,
    m.VAL_ACC_BY_SHARE,
    *CONFIRMED_COLUMNS,
    "checkpoint",
    m.NODE,
    m.DEVICE,
    "seconds",
    "error",
]
_TEXT_COLUMNS = ("label", "status", "checkpoint", m.DEVICE, "error")


def confirmed_text(row, metric: str = m.VAL_ACC) -> str:
    """A trial's confirmed `metric` (accuracy, area or HM) with its 95% interval, e.g.
    "96.5% (95.4–97.4)"; "" for a trial that was not confirmed."""
    confirmed = m.CONFIRMED_OF[metric]
    if pd.isna(row.get(confirmed)):
        return ""
    low, high = (row[k] for k in m.INTERVAL_OF[confirmed])
    return f"{row[confirmed]:.1%} ({100 * low:.1f}–{100 * high:.1f})"


def ranked(table: pd.DataFrame, metric: str = m.VAL_ACC) -> pd.DataFrame:
    """Trials that count for "best" (finished, not diverged or failed), best first.

    `metric` is the run's primary objective (`run_metric`): validation accuracy or area.
    Confirmed trials come first, by its confirmed figure: that is how the winner is
    chosen. The rest follow by `metric` at their best epoch, ties broken by the lower
    validation loss. Test figures never enter.
    """
    usable = table[table["status"].isin(RANKED_STATUSES) & table[metric].notna()]
    keys = [k for k in (m.CONFIRMED_OF[metric], metric, m.VAL_LOSS) if k in usable]
    ascending = [k == m.VAL_LOSS for k in keys]
    return usable.sort_values(keys, ascending=ascending, na_position="last")


# ---------------------------------------------------------------- checkpoints


def checkpoint_state(
    models: list[SequenceLSTM],
    optimizers: list[torch.optim.Optimizer],
    epoch: int,
    value: float,
    train_seconds: float = 0.0,
) -> dict:
    """What a trial checkpoint holds: tensors and plain values only, so loading it runs
    no code. One model per fold (one without cross-validation), each with its own scaling
    in its state_dict; their config and shape are kept so they can be rebuilt alone."""
    return {
        "models": [model.state_dict() for model in models],
        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
        "model_config": models[0].config.to_dict(),
        "shape": models[0].shape.to_dict(),
        m.EPOCH: epoch,
        "value": value,  # the primary objective at this epoch
        m.TRAIN_SECONDS: train_seconds,
    }


def load_checkpoint(path: Path | io.BytesIO, device: torch.device | str = "cpu") -> dict:
    """A trial checkpoint is data, not code: tensors and plain values only."""
    return torch.load(path, map_location=device, weights_only=True)


def build_members(
    config: dict, shape: dict, states: list[dict], device: torch.device | str
) -> SequenceLSTM | Ensemble:
    """Networks of one configuration from their state_dicts: one, or an Ensemble."""
    lstm, series = LSTMConfig.from_dict(config), SeriesShape.from_dict(shape)
    members = []
    for state in states:
        members.append(SequenceLSTM(lstm, series).to(device))
        members[-1].load_state_dict(state)
    model = members[0] if len(members) == 1 else Ensemble(members)
    return model.eval()


def load_model(path: Path, device: torch.device | str = "cpu") -> SequenceLSTM | Ensemble:
    """The model a trial checkpoint holds, in eval mode on `device`: its network, or its
    folds' networks as one Ensemble under cross-validation."""
    state = load_checkpoint(path, device)
    return build_members(state["model_config"], state["shape"], state["models"], device)


def write_best(
    run: RunLocation,
    table: pd.DataFrame,
    more: dict[str, list[dict]] | None = None,
    metric: str = m.VAL_ACC,
    classes: list | None = None,
) -> dict | None:
    """Write the winner (first of `ranked(table, metric)`) into best/; returns what
    config.json says, or None when no trial can win.

    best/model.pt holds a list of state_dicts of the winner's configuration: its search
    trial's best epoch (one per fold under cross-validation), then `more[winner's id]`
    (the models confirmation trained on other folds), read together as one `Ensemble`.
    config.json holds its hyperparameters, the data's `classes`, and the stopping rule
    the search chose for it (the threshold of its best epoch).
    """
    best = ranked(table, metric)
    if best.empty or not best.iloc[0]["checkpoint"]:
        return None
    winner, confirmed = best.iloc[0], m.CONFIRMED_OF[metric]
    state = load_checkpoint(io.BytesIO(run.read_bytes(winner["checkpoint"])))  # any storage
    members = [*state["models"], *(more or {}).get(winner["trial_id"], [])]
    figures = [
        m.VAL_ACC,
        m.VAL_AREA,
        *EARLY_COLUMNS,
        m.PARAM_COUNT,
        *(k for figure, interval in m.INTERVAL_OF.items() for k in (figure, *interval)),
        m.CONFIRMED_EARLY_ACC,
        m.CONFIRMED_EARLINESS,
    ]
    rule = winner.get(m.VAL_THRESHOLD)
    about = {
        "trial_id": winner["trial_id"],
        "hyperparameters": {k: _plain(winner[k]) for k in PARAMS},
        "model_config": state["model_config"],
        "shape": state["shape"],
        "classes": list(classes) if classes is not None else None,
        "stopping_rule": StoppingRule(float(rule)).to_dict() if pd.notna(rule) else None,
        "epoch": state[m.EPOCH],
        "members": len(members),
        "chosen_by": confirmed if pd.notna(winner.get(confirmed)) else metric,
        **{k: _plain(winner[k]) for k in figures if k in winner and pd.notna(winner[k])},
        "checkpoint": winner["checkpoint"],
    }
    buffer = io.BytesIO()
    torch.save(members, buffer)
    run.write_bytes(BEST_MODEL, buffer.getvalue())
    run.write_bytes(BEST_CONFIG, (json.dumps(about, indent=2) + "\n").encode())
    return about


def load_best(run_dir: str | Path, device: torch.device | str = "cpu") -> Classifier:
    """The search's winner, ready to classify raw series of the data it searched:

        winner = load_best("runs/NAME")
        winner.predict(X)            # X (N, T, F), (N, T) or a list of series
        winner.predict_early(X)      # (classes, share of each series read)

    `winner.model(values, lengths)` gives the scores after every step, (N, S, C)."""
    run_dir = Path(run_dir)
    about = json.loads((run_dir / BEST_CONFIG).read_text())
    states = torch.load(run_dir / BEST_MODEL, map_location=device, weights_only=True)
    model = build_members(about["model_config"], about["shape"], states, device)
    rule = about.get("stopping_rule")
    classes = about["classes"] or list(range(model.shape.classes))
    return Classifier(model, classes, StoppingRule(**rule) if rule else None)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------- test split and trials.csv


def write_test_split(run: RunLocation, split: Split) -> None:
    buffer = io.BytesIO()
    torch.save({"values": split.values, "lengths": split.lengths, "labels": split.labels}, buffer)
    run.write_bytes(TEST_SPLIT, buffer.getvalue())


def read_test_split(run_dir: Path) -> Split:
    state = torch.load(run_dir / TEST_SPLIT, weights_only=True)
    return Split(values=state["values"], lengths=state["lengths"], labels=state["labels"])


def write_trials(table: pd.DataFrame, run: RunLocation) -> None:
    run.write_bytes(TRIALS_CSV, table.to_csv(index=False).encode())


def read_trials(path: Path) -> pd.DataFrame:
    # trial ids are hex strings: "00916631" must not become the number 916631; and the
    # hyperparameters read back exactly as written (pandas' default parser may not).
    table = pd.read_csv(
        path,
        dtype={"trial_id": str, **dict.fromkeys(_TEXT_COLUMNS, str)},
        float_precision="round_trip",
    )
    missing = [c for c in TRIAL_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path} is not a trials table: it lacks {', '.join(missing)}")
    for column in _TEXT_COLUMNS:
        table[column] = table[column].fillna("")
    table[STUDY_TRIAL] = table[STUDY_TRIAL].astype("Int64")
    return table
