"""The run folder: the one contract between the search and the analysis.

`<storage-path>/<name>/` holds Ray Tune's experiment files plus:
- `run.json`: dataset, split sizes, seed, flags, command line, package versions, timing;
- `trials.csv`: one row per trial, its best epoch's figures and its checkpoint.

Paths inside are relative to the run folder, so the folder can move to another machine.
"""

from __future__ import annotations

import json
import os
import platform
import posixpath
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch
from ray.tune import ResultGrid

from search import metrics as m
from search.data import Split
from search.space import PARAMS, SEED_LABEL, is_seed
from search.storage import RunLocation, torch_bytes
from search.trainable import CHECKPOINT_FILE

RUN_JSON = "run.json"
TRIALS_CSV = "trials.csv"
# The test split, as uint8 tensors, so reports evaluate on exactly the digits the search
# held out, on any machine, without the original data folder.
TEST_SPLIT = "test_split.pt"
TRIAL_COLUMNS = [
    "trial_id",
    "label",
    "status",
    *PARAMS,
    "epochs",
    "best_epoch",
    m.VAL_ACC,
    m.VAL_LOSS,
    m.VAL_ACC_BY_STEP,
    "checkpoint",
    m.NODE,
    "seconds",
    "error",
]
PACKAGES = ("torch", "torchvision", "ray", "optuna", "numpy", "pandas", "seaborn", "mlxtend")

# Trial outcomes in trials.csv.
COMPLETED = "completed"  # trained to --max-epochs
STOPPED = "stopped"  # stopped early by ASHA: a normal outcome
DIVERGED = "diverged"  # loss went NaN/inf; excluded from "best"
FAILED = "failed"  # raised an error more often than the retry limit allows
UNFINISHED = "unfinished"  # the search ended (e.g. Ctrl-C) while it was pending or running


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_info(run: RunLocation, info: dict) -> None:
    """Write (or rewrite) run.json; on local disks atomically, so a crash leaves no half file."""
    text = json.dumps(info, indent=2, default=str) + "\n"
    run.write_bytes(RUN_JSON, text.encode())


def write_test_split(run: RunLocation, split: Split) -> None:
    run.write_bytes(TEST_SPLIT, torch_bytes({"images": split.images, "labels": split.labels}))


def read_test_split(run_dir: Path) -> Split:
    state = torch.load(run_dir / TEST_SPLIT, weights_only=True)
    return Split(images=state["images"], labels=state["labels"])


def read_run_info(run_dir: Path) -> dict:
    return json.loads((run_dir / RUN_JSON).read_text())


def new_run_info(config, dataset_name: str, split_sizes: dict[str, int]) -> dict:
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


def trials_table(results: ResultGrid, run: RunLocation, max_epochs: int) -> pd.DataFrame:
    """One row per trial: its hyperparameters, outcome and best (validation) epoch."""
    # ResultGrid lacks what a trial that never reported has (its config) and Tune's own
    # status (TERMINATED, ERROR, PAUSED...), which tells a trial ASHA stopped from one the
    # search abandoned; its analysis object holds the trials, in the same order.
    trials = results._experiment_analysis.trials
    rows = [_trial_row(t, r, run, max_epochs) for t, r in zip(trials, results, strict=True)]
    table = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    return table.sort_values("trial_id", kind="stable").reset_index(drop=True)


def _trial_row(trial, result, run: RunLocation, max_epochs: int) -> dict:
    config, last = trial.config, result.metrics or {}
    history = result.metrics_dataframe
    row = {k: config.get(k) for k in PARAMS}
    row["trial_id"] = trial.trial_id
    row["label"] = SEED_LABEL if is_seed(config) else ""
    row["epochs"] = int(last.get(m.EPOCH, 0))
    row[m.NODE] = last.get(m.NODE)
    row["seconds"] = last.get("time_total_s")
    row["error"] = _one_line(result.error) if result.error else ""

    if result.error:
        row["status"] = FAILED
    elif last.get(m.DIVERGED):
        row["status"] = DIVERGED
    elif row["epochs"] >= max_epochs:
        row["status"] = COMPLETED
    elif row["epochs"] > 0 and trial.status == "TERMINATED":
        row["status"] = STOPPED
    else:
        row["status"] = UNFINISHED

    evaluated = (
        history[history[m.VAL_LOSS].notna()]
        if history is not None and m.VAL_LOSS in history
        else pd.DataFrame()
    )
    if not evaluated.empty and row["status"] != DIVERGED:
        best = evaluated.loc[evaluated[m.VAL_ACC].idxmax()]
        row["best_epoch"] = int(best[m.EPOCH])
        row[m.VAL_ACC] = float(best[m.VAL_ACC])
        row[m.VAL_LOSS] = float(best[m.VAL_LOSS])
        row[m.VAL_ACC_BY_STEP] = json.dumps(_as_list(best[m.VAL_ACC_BY_STEP]))
    if result.checkpoint is not None and row["status"] != DIVERGED:
        row["checkpoint"] = run.relative(posixpath.join(result.checkpoint.path, CHECKPOINT_FILE))
    return row


def _as_list(value) -> list[float]:
    if isinstance(value, str):
        value = json.loads(value)
    return [float(v) for v in value]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"


def write_trials(table: pd.DataFrame, run: RunLocation) -> None:
    run.write_bytes(TRIALS_CSV, table.to_csv(index=False).encode())


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Trials that count for "best" (finished, not diverged or failed), best first."""
    usable = table[table["status"].isin([COMPLETED, STOPPED]) & table[m.VAL_ACC].notna()]
    return usable.sort_values([m.VAL_ACC, m.VAL_LOSS], ascending=[False, True])
