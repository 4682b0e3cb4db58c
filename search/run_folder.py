"""The run folder: the one contract between the search and the analysis. No Ray here.

`<storage-path>/<name>/` holds Ray Tune's experiment files plus ours:
- `run.json`: dataset, split sizes, seed, flags, command line, package versions, timing;
- `trials.csv`: one row per trial, its outcome, its best epoch's figures and checkpoint;
- `test_split.pt`: the held-out digits, so reports need no data folder;
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
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from models.lstm import Ensemble, LSTMConfig, RowLSTM
from search import metrics as m
from search.data import Split
from search.errors import UserError
from search.space import PARAMS

if TYPE_CHECKING:  # pyarrow comes with Ray; reading a run folder needs neither
    from search.storage import RunLocation

RUN_JSON = "run.json"
TRIALS_CSV = "trials.csv"
# The test split, as uint8 tensors, so reports evaluate on exactly the digits the search
# held out, on any machine, without the original data folder.
TEST_SPLIT = "test_split.pt"
RESULT_JSON = "result.json"  # Ray Tune's per-trial log: one JSON line per reported epoch
CHECKPOINT_FILE = "checkpoint.pt"  # inside each of Tune's checkpoint folders
TUNER_STATE = "tuner.pkl"  # written by Ray Tune; its presence makes a folder resumable
REPORT_DIR = "report"
# The answer of the search, in one obvious place: the winner's weights and configuration.
BEST_DIR = "best"
BEST_MODEL = f"{BEST_DIR}/model.pt"  # the winner's state_dicts (see write_best)
BEST_CONFIG = f"{BEST_DIR}/config.json"  # its hyperparameters, LSTMConfig and figures

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
    m.CONFIRMED_AUC,
    m.CONFIRMED_AUC_LOW,
    m.CONFIRMED_AUC_HIGH,
]
ANYTIME_COLUMNS = [m.VAL_AUC_ROWS, m.VAL_ROWS_TO_50, m.VAL_ROWS_TO_90]
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
    m.VAL_ACC_BY_STEP,
    *CONFIRMED_COLUMNS,
    "checkpoint",
    m.NODE,
    m.DEVICE,
    "seconds",
    "error",
]
# Columns that runs made before they existed lack: read back as NaN.
_LATER_COLUMNS = [*CONFIRMED_COLUMNS, *ANYTIME_COLUMNS, m.PARAM_COUNT, STUDY_TRIAL, m.DEVICE]
_TEXT_COLUMNS = ("label", "status", "checkpoint", m.DEVICE, "error")


# A confirmed figure's interval columns.
_INTERVAL = {
    m.CONFIRMED_ACC: (m.CONFIRMED_LOW, m.CONFIRMED_HIGH),
    m.CONFIRMED_AUC: (m.CONFIRMED_AUC_LOW, m.CONFIRMED_AUC_HIGH),
}


def confirmed_text(row, metric: str = m.VAL_ACC) -> str:
    """A trial's confirmed `metric` (accuracy or area) with its 95% interval, e.g.
    "96.5% (95.4–97.4)"; "" for a trial that was not confirmed."""
    confirmed = m.CONFIRMED_OF[metric]
    if pd.isna(row.get(confirmed)):
        return ""
    low, high = (row[k] for k in _INTERVAL[confirmed])
    return f"{row[confirmed]:.1%} ({100 * low:.1f}–{100 * high:.1f})"


def run_objective(info: dict) -> str:
    """A run's `--objective`, from its run.json (runs made before the flag: accuracy)."""
    return info.get("flags", {}).get("objective", "accuracy")


def run_metric(info: dict) -> str:
    """The metric a run ranks its trials by (its primary objective), from its run.json."""
    return m.primary_metric(run_objective(info))


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
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    val_acc: float,
    train_seconds: float = 0.0,
) -> dict:
    """What a trial checkpoint holds: tensors and plain values only, so loading it runs
    no code. `model.config` (an LSTMConfig) is kept so the model can be rebuilt alone."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_config": model.config.to_dict(),
        m.EPOCH: epoch,
        m.VAL_ACC: val_acc,
        m.TRAIN_SECONDS: train_seconds,
    }


def load_checkpoint(path: Path | io.BytesIO, device: torch.device | str = "cpu") -> dict:
    """A trial checkpoint is data, not code: tensors and plain values only."""
    return torch.load(path, map_location=device, weights_only=True)


def load_model(path: Path, device: torch.device | str = "cpu") -> RowLSTM:
    """The model saved in a trial checkpoint, in eval mode on `device`."""
    state = load_checkpoint(path, device)
    model = RowLSTM(LSTMConfig.from_dict(state["model_config"])).to(device)
    model.load_state_dict(state["model"])
    return model.eval()


def write_best(
    run: RunLocation,
    table: pd.DataFrame,
    more: dict[str, list[dict]] | None = None,
    metric: str = m.VAL_ACC,
) -> dict | None:
    """Write the winner (first of `ranked(table, metric)`) into best/; returns what
    config.json says, or None when no trial can win.

    best/model.pt holds a list of state_dicts of the winner's configuration: its search
    trial's best epoch, then `more[winner's id]` (the models confirmation trained on other
    folds), read together as one `Ensemble`.
    """
    best = ranked(table, metric)
    if best.empty or not best.iloc[0]["checkpoint"]:
        return None
    winner, confirmed = best.iloc[0], m.CONFIRMED_OF[metric]
    state = load_checkpoint(io.BytesIO(run.read_bytes(winner["checkpoint"])))  # any storage
    members = [state["model"], *(more or {}).get(winner["trial_id"], [])]
    figures = [
        m.VAL_ACC,
        m.VAL_AUC_ROWS,
        m.PARAM_COUNT,
        *(k for figure, interval in _INTERVAL.items() for k in (figure, *interval)),
    ]
    about = {
        "trial_id": winner["trial_id"],
        "hyperparameters": {k: _plain(winner[k]) for k in PARAMS},
        "model_config": state["model_config"],
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


def load_best(run_dir: str | Path, device: torch.device | str = "cpu") -> RowLSTM | Ensemble:
    """The search's winner, ready to classify: `load_best("runs/NAME")(images)`, with
    images (N, 28, 28) float in [0, 1], gives scores (N, 28, 10), one set per row read:
    logits of one model, or an Ensemble's log-probabilities; argmax gives the class."""
    run_dir = Path(run_dir)
    config = LSTMConfig.from_dict(json.loads((run_dir / BEST_CONFIG).read_text())["model_config"])
    members = []
    for state in torch.load(run_dir / BEST_MODEL, map_location=device, weights_only=True):
        members.append(RowLSTM(config).to(device))
        members[-1].load_state_dict(state)
    model = members[0] if len(members) == 1 else Ensemble(members)
    return model.eval()


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------- run.json


PACKAGES = ("torch", "torchvision", "ray", "optuna", "numpy", "pandas", "seaborn", "mlxtend")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def new_run_info(config, dataset_name: str, split_sizes: dict[str, int]) -> dict:
    """run.json of a new run; `config` is its SearchConfig."""
    return {
        "dataset": dataset_name,
        "split_sizes": split_sizes,
        "seed": config.seed,
        "flags": asdict(config),
        "command": " ".join([Path(sys.executable).name, "-m", "search.run", *sys.argv[1:]]),
        "packages": package_versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_run_info(run: RunLocation, info: dict) -> None:
    """Write (or rewrite) run.json; on local disks atomically, so a crash leaves no half file."""
    text = json.dumps(info, indent=2, default=str) + "\n"
    run.write_bytes(RUN_JSON, text.encode())


def read_run_info(run_dir: Path) -> dict:
    return json.loads((run_dir / RUN_JSON).read_text())


# ---------------------------------------------------------------- test split and trials.csv


def write_test_split(run: RunLocation, split: Split) -> None:
    buffer = io.BytesIO()
    torch.save({"images": split.images, "labels": split.labels}, buffer)
    run.write_bytes(TEST_SPLIT, buffer.getvalue())


def read_test_split(run_dir: Path) -> Split:
    state = torch.load(run_dir / TEST_SPLIT, weights_only=True)
    return Split(images=state["images"], labels=state["labels"])


def write_trials(table: pd.DataFrame, run: RunLocation) -> None:
    run.write_bytes(TRIALS_CSV, table.to_csv(index=False).encode())


def read_trials(path: Path) -> pd.DataFrame:
    # trial ids are hex strings: "00916631" must not become the number 916631.
    table = pd.read_csv(path, dtype={"trial_id": str, **dict.fromkeys(_TEXT_COLUMNS, str)})
    for column in _LATER_COLUMNS:
        if column not in table.columns:
            table[column] = float("nan")
    missing = [c for c in TRIAL_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path} is not a trials table: it lacks {', '.join(missing)}")
    for column in _TEXT_COLUMNS:
        table[column] = table[column].fillna("")
    table[STUDY_TRIAL] = table[STUDY_TRIAL].astype("Int64")  # blank for old runs
    return table
