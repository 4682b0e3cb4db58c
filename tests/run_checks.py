"""What a run folder holds, read the way the end-to-end tests and the chaos benchmark
(bench/chaos.py) check it: each trial's reports, and the Optuna study beside Tune's table."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd

from search import study as st
from search.run_folder import RESULT_JSON, trial_dir
from search.run_record import RunRecord

# What Optuna must hold for each outcome in trials.csv (see search/searcher.py).
STUDY_STATES = {
    "completed": "COMPLETE",
    "stopped": "PRUNED",
    "failed": "FAIL",
    "diverged": "COMPLETE",  # valued at 0
}


def epochs_reported(run_dir: Path) -> dict[str, list[dict]]:
    """Every trial's reports so far, read from Tune's result.json files."""
    reports = {}
    for path in run_dir.glob(f"{trial_dir('*')}/{RESULT_JSON}"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        reports[path.parent.name] = lines
    return reports


def optuna_study(run_dir: Path, url: str | None = None) -> optuna.Study:
    """The search's Optuna study, from the storage its run.json names (or `url`, for a
    database whose password run.json does not keep)."""
    ref = st.ref_of_run(run_dir, RunRecord.read(run_dir))
    return st.load(st.StudyRef(url, ref.name) if url else ref)


def study_trials(run_dir: Path, url: str | None = None) -> dict[str, tuple[str, int]]:
    """The run's own trials in its study: Tune's trial id -> (Optuna state, number)."""
    run = RunRecord.read(run_dir).study.run
    trials = st.own_trials(optuna_study(run_dir, url), run)
    return {t.user_attrs[st.TUNE_ID_ATTR]: (t.state.name, t.number) for t in trials}


def expected_study_trials(table: pd.DataFrame) -> dict[str, tuple[str, int]]:
    """What the study must hold for trials.csv's `table`, in `study_trials`' form."""
    states = table["status"].map(STUDY_STATES)
    return {
        trial_id: (state, number)
        for trial_id, state, number in zip(
            table["trial_id"], states, table["study_trial"], strict=True
        )
    }
