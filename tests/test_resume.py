"""Nothing lost: a killed driver, Ctrl-C, a killed trial worker, a diverging configuration.

Each test runs real searches through the CLI in a process group of its own, so that the
whole group (driver, raylet, workers) can be killed like a closed terminal and is always
cleaned up, even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from ray.tune import ExperimentAnalysis

from search import study as st
from search.claim import CLAIM_FILE
from search.run_folder import RESULT_JSON, TRIALS_CSV, read_trials, trial_dir
from search.space import SEED_CONFIG
from tests.conftest import REPO, SMALL_NETS
from tests.run_checks import (  # noqa: F401 (epochs_reported, optuna_study: for other tests)
    epochs_reported,
    expected_study_trials,
    optuna_study,
    study_trials,
)

pytestmark = pytest.mark.e2e


# These tests time their faults by how many trials have started, which assumes few trial
# slots: Ray sees two CPUs whatever the machine has.
TWO_CPUS = {"RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": 2})}


class Search:
    """A `python -m search.run` process in its own process group, on a 2-CPU local Ray."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "search.run", *args],
            cwd=REPO,
            env={**os.environ, **TWO_CPUS, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait(self, timeout: float = 300) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)


@pytest.fixture
def searches():
    started: list[Search] = []

    def start(*args: str) -> Search:
        started.append(Search(*args))
        return started[-1]

    yield start
    for search in started:
        search.kill_group()


def run_search(*args: str, timeout: float = 300) -> tuple[int, str, str]:
    search = Search(*args)
    try:
        return search.wait(timeout)
    finally:
        search.kill_group()


def wait_for(condition: Callable[[], bool], timeout: float = 180, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def assert_study_matches(run_dir: Path, table: pd.DataFrame, url: str | None = None) -> None:
    """Trial by trial, Optuna's state is Tune's outcome, trials.csv names the study's trial,
    and nothing is left RUNNING or counted twice."""
    trials = study_trials(run_dir, url)
    assert len(trials) == len(table)
    assert trials == expected_study_trials(table)


def write_points(path: Path, **overrides) -> Path:
    """An --enqueue file with one configuration: the tutorial's, changed by `overrides`."""
    path.write_text(json.dumps([{**SEED_CONFIG, **overrides}]))
    return path


def base_args(
    tmp_path: Path, name: str, *extra: str, space: Path | None = SMALL_NETS
) -> list[str]:
    """A search into `tmp_path/runs/name`, of small networks unless `space` says otherwise
    (None: the space that goes with the data)."""
    spaced = ["--space", str(space)] if space else []
    return ["--storage-path", str(tmp_path / "runs"), "--name", name, *spaced, *extra]


def test_sigkill_driver_then_resume(tmp_path, searches):
    run_dir = tmp_path / "runs" / "killed"
    # The default space: its costly networks reach ASHA's first rung (on seconds) in two
    # epochs, so that some trials are stopped.
    args = base_args(tmp_path, "killed", "--trials", "6", "--max-epochs", "2", space=None)
    search = searches(*args)
    # Kill the whole session (driver and Ray) once some trials finished, others not.
    wait_for(lambda: len(epochs_reported(run_dir)) >= 4, what="four trials to start")
    search.kill_group()

    before = ExperimentAnalysis(str(run_dir))
    finished_before = {
        t.trial_id: (run_dir / trial_dir(t.trial_id) / RESULT_JSON).read_bytes()
        for t in before.trials
        if t.status == "TERMINATED"
    }
    assert 1 <= len(finished_before) < 6

    # The killed driver's claim is stale: the resume takes the folder over.
    assert (run_dir / CLAIM_FILE).exists()
    code, out, err = run_search(*args, "--resume")
    assert code == 0, err[-3000:]
    assert not (run_dir / CLAIM_FILE).exists()  # released at the end
    table = pd.read_csv(run_dir / TRIALS_CSV)
    assert len(table) == 6
    assert set(table["status"]) <= {"completed", "stopped"}
    assert not table.duplicated(["num_layers", "hidden_size", "dropout", "lr"]).any()
    for trial_id, content in finished_before.items():  # not rerun, not even touched
        assert (run_dir / trial_dir(trial_id) / RESULT_JSON).read_bytes() == content
    assert (table["status"] == "stopped").any()  # ASHA stopped some: PRUNED for Optuna
    assert_study_matches(run_dir, table)


def test_sigint_saves_state_and_prints_a_working_resume_command(tmp_path, searches):
    run_dir = tmp_path / "runs" / "interrupted"
    # Trial 2 (enqueued) always fails, so the resume also meets an errored trial.
    enqueue = write_points(tmp_path / "failing.json", num_layers=0)
    args = base_args(
        tmp_path,
        "interrupted",
        "--trials",
        "6",
        "--max-epochs",
        "2",
        "--enqueue",
        str(enqueue),
        "--max-failures",
        "1",
    )
    search = searches(*args)
    wait_for(lambda: len(epochs_reported(run_dir)) >= 3, what="three trials to start")
    search.proc.send_signal(signal.SIGINT)
    code, out, err = search.wait(timeout=120)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    match = re.search(r"Resume with: (python -m search\.run .*--resume)$", last)
    assert match, last
    assert "KeyboardInterrupt" not in err

    command = match.group(1).split()[3:]  # after "python -m search.run"
    code, out, err = run_search(*command)
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert len(table) == 6
    failed = table[table["status"] == "failed"]
    assert len(failed) == 1 and failed.iloc[0]["num_layers"] == 0
    assert "num_layers" in failed.iloc[0]["error"]
    # Optuna's study and Tune's results agree after the resume.
    assert_study_matches(run_dir, table)


def test_asha_on_training_seconds_resumes_with_the_unit_it_started_with(tmp_path, searches):
    run_dir = tmp_path / "runs" / "seconds"
    args = base_args(tmp_path, "seconds", "--trials", "6", "--max-epochs", "3")
    search = searches(*args, "--asha-time", "seconds", "--confirm-top", "0", "--no-report")
    wait_for(lambda: len(epochs_reported(run_dir)) >= 3, what="three trials to start")
    search.proc.send_signal(signal.SIGINT)
    code, out, err = search.wait(timeout=120)
    assert code == 130, err[-3000:]
    unit = json.loads((run_dir / "run.json").read_text())["asha_unit_seconds"]
    assert f"units of {unit:.3f} s" in out

    code, out, err = run_search(*args[:4], "--resume")  # the flags come from run.json
    assert code == 0, err[-3000:]
    assert "ASHA counts" not in out  # the resumed scheduler keeps its rungs: not re-timed
    assert json.loads((run_dir / "run.json").read_text())["asha_unit_seconds"] == unit
    table = pd.read_csv(run_dir / TRIALS_CSV)
    assert len(table) == 6 and set(table["status"]) <= {"completed", "stopped"}
    assert_study_matches(run_dir, table)
    # The unit is one epoch of the tutorial's network, the first trial: timed alike.
    reports = epochs_reported(run_dir)
    tutorial = table[table["label"] == "seed"]["trial_id"].item()
    epoch_seconds = sorted(r["epoch_seconds"] for r in reports[trial_dir(tutorial)])
    assert unit / 3 < epoch_seconds[len(epoch_seconds) // 2] < unit * 3
    for trial in reports.values():  # ASHA's clock: each trial's epochs' seconds, summed
        # (by epoch: one interrupted mid-epoch ran again from the previous epoch's state)
        epochs = [r for _, r in sorted({r["epoch"]: r for r in trial}.items())]
        sums = [sum(r["epoch_seconds"] for r in epochs[: i + 1]) for i in range(len(epochs))]
        assert [r["train_seconds"] for r in epochs] == pytest.approx(sums)

    # Each trial keeps its cost per epoch in units, so a search on seconds (here on the
    # same machine) warm-starts from it with the source's epochs placed by their cost.
    measured = optuna_study(run_dir).get_trials(states=st.WARM_STATES)
    units = {t.user_attrs[st.TUNE_ID_ATTR]: t.user_attrs[st.EPOCH_UNITS_ATTR] for t in measured}
    for trial_id, per_epoch in units.items():
        trial = reports[trial_dir(trial_id)]
        last = [r for r in trial if r["epoch"] == max(r["epoch"] for r in trial)][-1]
        assert per_epoch == pytest.approx(last["train_seconds"] / last["epoch"] / unit, rel=1e-3)
    warm = base_args(tmp_path, "warm", "--trials", "2", "--max-epochs", "3", "--no-report")
    # Named as a run under the same --storage-path (test_study_e2e names a folder's path).
    code, out, err = run_search(*warm, "--confirm-top", "0", "--warm-start", "seconds")
    assert code == 0, err[-3000:]
    info = json.loads((tmp_path / "runs" / "warm" / "run.json").read_text())
    assert info["warm_start"]["copied"] == len(measured) and info["asha_unit_seconds"]


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    run_dir = tmp_path / "runs" / "worker"
    args = base_args(
        tmp_path, "worker", "--trials", "2", "--max-epochs", "6", "--grace-epochs", "6"
    )
    search = Search(*args)
    try:
        killed: dict = {}

        def trial_reported_epoch_2() -> bool:
            for trial, reports in epochs_reported(run_dir).items():
                if reports and reports[-1]["epoch"] >= 2:
                    killed.update(trial=trial, pid=reports[-1]["pid"])
                    return True
            return False

        wait_for(trial_reported_epoch_2, what="a trial to finish two epochs")
        os.kill(killed["pid"], signal.SIGKILL)
        code, out, err = search.wait(timeout=300)
    finally:
        search.kill_group()

    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV)
    assert len(table) == 2 and (table["status"] == "completed").all()
    reports = epochs_reported(run_dir)[killed["trial"]]
    before = [r["epoch"] for r in reports if r["pid"] == killed["pid"]]
    after = [r["epoch"] for r in reports if r["pid"] != killed["pid"]]
    assert after, "the killed trial never ran again"
    # Every epoch leaves a checkpoint: the restart redoes none of the finished epochs.
    assert after[0] == max(before) + 1
    assert after[-1] == 6
    # Its training seconds count on from the checkpoint (ASHA's time under --asha-time
    # seconds): they grow with every epoch, across the restart.
    spent = [r["train_seconds"] for r in reports]
    assert spent == sorted(spent) and len(set(spent)) == len(spent)


def test_diverging_configuration_is_recorded_and_skipped(tmp_path):
    run_dir = tmp_path / "runs" / "diverge"
    enqueue = write_points(tmp_path / "huge_lr.json", lr=1e36)
    args = base_args(
        tmp_path, "diverge", "--trials", "3", "--max-epochs", "2", "--enqueue", str(enqueue)
    )
    code, out, err = run_search(*args)
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert len(table) == 3
    diverged = table[table["status"] == "diverged"]
    assert len(diverged) == 1 and diverged.iloc[0]["lr"] == 1e36
    assert diverged.iloc[0]["epochs"] == 1  # ended at once
    assert diverged.iloc[0]["trial_id"] not in out.split("Top")[1]  # never ranked
    # The searcher learnt it was bad: Optuna holds it as complete with accuracy 0.
    values = [t.value for t in optuna_study(run_dir).trials if t.params["lr"] == 1e36]
    assert values == [0.0]


def test_time_budget_ends_cleanly_confirms_and_resumes(tmp_path):
    run_dir = tmp_path / "runs" / "budget"
    budget = 15
    args = base_args(tmp_path, "budget", "--trials", "50", "--max-epochs", "2", "--no-report")
    args += ["--time-budget", f"{budget}s", "--confirm-top", "2", "--confirm-folds", "2"]
    code, out, err = run_search(*args)
    assert code == 0, err[-3000:]
    assert re.search(r"time budget reached after \d+ of 50 trials", err), err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert 1 <= len(table) < 50
    assert set(table["status"]) <= {"completed", "stopped"}
    # Trials still running at the deadline stopped after the epoch they were in.
    longest_epoch = max(
        r.get("epoch_seconds", 0) for t in epochs_reported(run_dir).values() for r in t
    )
    info = json.loads((run_dir / "run.json").read_text())
    assert info["wall_seconds"] <= budget + longest_epoch + 15
    assert (table["confirmed_acc"] != "").sum() == min(2, len(table))
    assert (run_dir / "best" / "model.pt").is_file()
    assert_study_matches(run_dir, table)

    # A resumed session has a budget of its own: it searches on, past the first session's
    # trials, and reruns none of them.
    results = {p: p.read_bytes() for p in run_dir.glob(f"{trial_dir('*')}/{RESULT_JSON}")}
    code, out, err = run_search(
        "--storage-path", str(tmp_path / "runs"), "--name", "budget", "--resume"
    )
    assert code == 0, err[-3000:]
    assert re.search(r"time budget reached after \d+ of 50 trials", err), err[-3000:]
    assert {p: p.read_bytes() for p in results} == results  # nothing rerun
    resumed = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert len(table) < len(resumed) < 50
    assert set(table["trial_id"]) < set(resumed["trial_id"])
    assert json.loads((run_dir / "run.json").read_text())["sessions"] == 2
    assert_study_matches(run_dir, resumed)


def test_a_tiny_multi_objective_every_row_search(tmp_path):
    run_dir = tmp_path / "runs" / "pareto"
    args = base_args(tmp_path, "pareto", "--trials", "4", "--max-epochs", "2", "--no-report")
    args += ["--loss", "all", "--objective", "accuracy+size", "--confirm-top", "1"]
    code, out, err = run_search(*args)
    assert code == 0, err[-3000:]
    table = read_trials(run_dir / TRIALS_CSV)  # floats exactly as written
    assert len(table) == 4 and set(table["status"]) <= {"completed", "stopped"}
    assert (table["val_area"].between(0, 1)).all() and (table["params"] > 0).all()
    # Optuna's study has both objectives; a completed trial holds its best epoch's pair.
    study = optuna_study(run_dir)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert_study_matches(run_dir, table)
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            row = table[table["lr"] == trial.params["lr"]].iloc[0]
            assert trial.values == [pytest.approx(row["val_acc"]), row["params"]]
    # Every epoch reported the anytime figures, and training used the every-row loss.
    info = json.loads((run_dir / "run.json").read_text())
    assert (info["flags"]["loss"], info["flags"]["objective"]) == ("all", "accuracy+size")
    for reports in epochs_reported(run_dir).values():
        for r in reports:
            assert 0 <= r["val_area"] <= 1 and r["val_steps_to_50"] in (None, *range(1, 29))
    # A report is built from it, with its Pareto front.
    assert (
        subprocess.run(
            [sys.executable, "-m", "analysis.report", str(run_dir)], cwd=REPO, timeout=300
        ).returncode
        == 0
    )
    assert (run_dir / "report" / "pareto_front.csv").is_file()
