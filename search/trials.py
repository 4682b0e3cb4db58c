"""Ray Tune's results -> the run folder's trials table (one row per trial)."""

from __future__ import annotations

import json
import math
import posixpath

import pandas as pd
from ray.tune import ExperimentAnalysis, ResultGrid

from search import metrics as m
from search.faults import memory_kill
from search.run_folder import (
    ANYTIME_COLUMNS,
    CHECKPOINT_FILE,
    EARLY_COLUMNS,
    TRIAL_COLUMNS,
    TrialStatus,
    trial_status,
)
from search.space import SEED_LABEL, hyperparameters, is_seed
from search.storage import RunLocation


def trials_table(
    results: ResultGrid, run: RunLocation, max_epochs: int, metric: str = m.VAL_ACC
) -> pd.DataFrame:
    """One row per trial: its hyperparameters, outcome and best epoch by `metric` (the
    primary objective, maximised), with that epoch's validation figures."""
    # A ResultGrid lacks what a trial that never reported has (its config) and Tune's own
    # status (TERMINATED, ERROR, PAUSED...), which tells a trial ASHA stopped from one the
    # search abandoned. The experiment's saved state, as Tune wrote it at the end of fit(),
    # holds both; its trials and the results are matched by their folders.
    trials = ExperimentAnalysis(run.path, storage_filesystem=run.fs).trials
    by_folder = {_folder(t.path): t for t in trials}
    rows = [_trial_row(by_folder[_folder(r.path)], r, run, max_epochs, metric) for r in results]
    table = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    return table.sort_values("trial_id", kind="stable").reset_index(drop=True)


def _folder(path: str) -> str:
    """A trial's folder name (`trial_<id>`) from its path in storage."""
    return posixpath.basename(path.rstrip("/"))


def _trial_row(trial, result, run: RunLocation, max_epochs: int, metric: str) -> dict:
    config, last = trial.config, result.metrics or {}
    history = result.metrics_dataframe
    row = hyperparameters(config)
    row["trial_id"] = trial.trial_id
    row["label"] = SEED_LABEL if is_seed(config) else ""
    row["epochs"] = int(last.get(m.EPOCH, 0))
    row[m.PARAM_COUNT] = last.get(m.PARAM_COUNT)
    row[m.NODE] = last.get(m.NODE)
    row[m.DEVICE] = last.get(m.DEVICE)
    row["seconds"] = last.get("time_total_s")
    row["error"] = _one_line(result.error) if result.error else ""
    row["status"] = trial_status(
        failed=result.error is not None,
        diverged=bool(last.get(m.DIVERGED)),
        epochs=row["epochs"],
        max_epochs=max_epochs,
        ended=trial.status == "TERMINATED",
    ).value

    best = _best_checkpoint(result, metric)
    if best is None or row["status"] == TrialStatus.DIVERGED:
        return row
    checkpoint, metrics = best
    # The best epoch is the one whose checkpoint Tune kept as best (of tied epochs, the
    # one it kept); its figures are that epoch's last report (a restart may repeat one).
    epoch = int(metrics[m.EPOCH])
    reports = history[history[m.EPOCH] == epoch].iloc[-1]
    row["best_epoch"] = epoch
    for figure in (m.VAL_ACC, m.VAL_LOSS, *ANYTIME_COLUMNS, *EARLY_COLUMNS):
        row[figure] = _number(reports.get(figure))
    for curve in (m.VAL_ACC_BY_STEP, m.VAL_ACC_BY_SHARE):
        row[curve] = json.dumps(_as_list(reports[curve]))
    row["checkpoint"] = run.relative(posixpath.join(checkpoint.path, CHECKPOINT_FILE))
    return row


def _best_checkpoint(result, metric: str):
    """(checkpoint, its report) of the best epoch Tune kept, or None. Tune keeps the best
    and the latest checkpoint; the best has the highest `metric`, ties to the earlier."""
    kept = [(c, r) for c, r in result.best_checkpoints or [] if r.get(m.VAL_LOSS) is not None]
    if not kept:
        return None
    return max(kept, key=lambda item: (item[1][metric], -item[1][m.EPOCH]))


def _number(value) -> float:
    """A reported figure as a float; NaN for one not reported (None) or missing."""
    return math.nan if value is None or pd.isna(value) else float(value)


def _as_list(value) -> list[float]:
    if isinstance(value, str):
        value = json.loads(value)
    return [float(v) for v in value]


def _one_line(error: BaseException) -> str:
    if reason := memory_kill(error):
        return reason
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"
