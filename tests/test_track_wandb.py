"""--track wandb in offline mode (nothing here reaches the network): the tracker driven by
hand, and what a real search wrote (tests/test_track_mlflow.py runs one search with every
tracker at once). Each offline run folder is read back by wandb's own reader, `wandb leet
inspect` (its `--summary --json` gives a run's state, exit code, config and summary; its
`--json`, the records: the group, the job type, every history row).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

wandb = pytest.importorskip("wandb")  # the `wandb` extra

from search import tracking  # noqa: E402
from search.errors import UserError  # noqa: E402
from search.run_folder import BEST_CONFIG, BEST_MODEL, TRIALS_CSV, read_trials  # noqa: E402
from search.run_record import RunRecord  # noqa: E402
from search.tracking import SearchEnd, SearchInfo, Spec  # noqa: E402
from search.tracking.wandb_tracker import PROJECT, SEARCH, WandbTracker  # noqa: E402


def search_info(tmp_path: Path, name: str = "s") -> SearchInfo:
    """A search whose run folder has a winner in best/."""
    run_dir = tmp_path / "runs" / name
    (run_dir / "best").mkdir(parents=True)
    (run_dir / BEST_MODEL).write_bytes(b"weights")
    (run_dir / BEST_CONFIG).write_text("{}\n")
    return SearchInfo(
        name=name,
        location=str(run_dir),
        local_dir=run_dir,
        dataset="mnist-5k",
        flags={"trials": 2, "name": name, "track": ["wandb"], "study_name": None},
        command=f"python -m search.run --name={name}",
        metric="val_acc",
    )


def inspect(*args) -> str:
    """`wandb leet inspect ARGS`, offline (its telemetry off)."""
    command = [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", *args]
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=60, check=True
    )
    return done.stdout


def read_run(folder: Path) -> dict:
    """One offline run folder (one session's part of a run), as wandb reads it."""
    about = json.loads(inspect("--summary", "--json", str(folder)))
    records = [json.loads(line) for line in inspect("--json", str(folder)).splitlines()]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    about["group"], about["job_type"] = run["run_group"], run["job_type"]
    about["history"] = [r["history"]["item"] for r in records if r["type"] == "history"]
    about["artifacts"] = [r["artifact"] for r in records if r["type"] == "artifact"]
    return about


def read_runs(run_dir: Path) -> dict[str, list[dict]]:
    """Run id -> its parts (one per session, first first), from `run_dir`/wandb."""
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    # Side by side: each reading is a wandb command, half a second of starting Python.
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(read_run, folders))
    parts: dict[str, list[dict]] = {}
    for about in sorted(found, key=lambda about: about["start_time"]):
        parts.setdefault(about["run_id"], []).append(about)
    return parts


def epochs(part: dict, key: str = "val_acc") -> list[tuple[int, float]]:
    return [(row["_step"], row[key]) for row in part["history"]]


def finish(tracker, table: dict[str, str], winner: dict | None, interrupted=False) -> None:
    counts = pd.Series(table).value_counts().to_dict()
    frame = pd.DataFrame({"trial_id": list(table), "status": list(table.values())})
    tracker.finish(SearchEnd(frame, winner, interrupted, counts))
    tracker.close()


WINNER = {
    "trial_id": "t1",
    "hyperparameters": {"lr": 0.01, "hidden_size": 32},
    "model_config": {"cell": "lstm"},  # not a figure: left out of the summary
    "epoch": 2,
    "chosen_by": "val_acc",
    "val_acc": 0.75,
    "checkpoint": "trial_t1/checkpoint_000001",
}

# ---------------------------------------------------------------- the tracker by hand


def test_a_run_per_trial_and_one_for_the_search_with_their_figures(wandb_offline, tmp_path, capfd):
    search = search_info(tmp_path)
    tracker = WandbTracker(Spec("wandb"), search)
    tracker.check()
    state = tracker.start(resumed=False)
    assert state["project"] == PROJECT and state["group"].startswith("s@")
    tracker.trial_started("t1", "trial_t1", {"lr": 0.01, "hidden_size": 32})
    tracker.trial_started("t2", "trial_t2", {"lr": 0.1, "hidden_size": 8})
    for epoch in (1, 2):
        tracker.epoch("t1", epoch, {"val_acc": 0.5 + epoch / 8, "val_loss": 1.0 / epoch})
        tracker.epoch("t2", epoch, {"val_acc": 0.1 * epoch, "val_loss": 2.0})
    # A retry from the checkpoint of epoch 1: Tune replays epoch 2, which is not logged
    # again (its step is the last one's: W&B would write it over the first).
    tracker.trial_started("t1", "trial_t1", {"lr": 0.01, "hidden_size": 32})
    tracker.epoch("t1", 2, {"val_acc": 0.0, "val_loss": 9.0})
    tracker.trial_ended("t1", "completed", {"val_acc": 0.75, "val_loss": 0.5})
    tracker.trial_ended("t2", "failed", {"val_acc": 0.2, "val_loss": 2.0})
    finish(tracker, {"t1": "completed", "t2": "failed"}, WINNER)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # quiet between the search's progress lines

    runs = read_runs(search.local_dir)  # all in the run folder, none in WANDB_DIR
    assert not Path(wandb_offline["WANDB_DIR"]).exists()
    assert set(runs) == {tracker.run_id("t1"), tracker.run_id("t2"), tracker.run_id(SEARCH)}
    assert all(len(parts) == 1 for parts in runs.values())
    (t1,), (t2,), (whole,) = (runs[tracker.run_id(k)] for k in ("t1", "t2", SEARCH))
    for run in (t1, t2, whole):
        assert run["project"] == PROJECT and run["group"] == state["group"]
    assert (t1["name"], t1["job_type"], t1["config"]) == (
        "trial_t1",
        "trial",
        {"lr": 0.01, "hidden_size": 32},
    )
    assert epochs(t1) == [(1, 0.625), (2, 0.75)]
    assert epochs(t1, "val_loss") == [(1, 1.0), (2, 0.5)]
    assert [row["epoch"] for row in t1["history"]] == [1, 2]
    assert epochs(t2) == [(1, 0.1), (2, 0.2)]
    assert (t1["state"], t1["exit_code"], t1["summary"]["outcome"]) == ("finished", 0, "completed")
    assert (t2["state"], t2["exit_code"], t2["summary"]["outcome"]) == ("failed", 1, "failed")
    assert t1["summary"]["val_acc"] == 0.75

    assert (whole["name"], whole["job_type"], whole["state"]) == ("s", "search", "finished")
    assert whole["config"] == {
        "flags": {"trials": 2, "name": "s", "track": ["wandb"], "study_name": None},
        "dataset": "mnist-5k",
        "command": "python -m search.run --name=s",
        "run_folder": search.location,
        "metric": "val_acc",
    }
    summary = whole["summary"]
    assert (summary["trials_completed"], summary["trials_failed"]) == (1, 1)
    assert summary["interrupted"] is False
    assert summary["winner"] == {
        "trial_id": "t1",
        "hyperparameters": {"lr": 0.01, "hidden_size": 32},
        "epoch": 2,
        "chosen_by": "val_acc",
        "val_acc": 0.75,
        "run_id": tracker.run_id("t1"),
    }
    ((best,),) = [whole["artifacts"]]
    assert (best["name"], best["type"]) == ("s-best", "model")
    files = {entry["path"] for entry in best["manifest"]["contents"]}
    assert files == {"model.pt", "config.json"}


def test_a_resumed_search_continues_its_runs_and_pickles_at_any_time(wandb_offline, tmp_path):
    search = search_info(tmp_path)
    tracker = WandbTracker(Spec.parse("wandb=my-project"), search)
    pickle.loads(pickle.dumps(tracker))  # before it started
    state = json.loads(json.dumps(tracker.start(resumed=False)))  # as run.json keeps it
    assert state["project"] == "my-project"
    tracker.trial_started("t1", "trial_t1", {"lr": 0.01})
    tracker.epoch("t1", 1, {"val_acc": 0.5})
    # Tune pickles the callback, its tracker with it, while trials run.
    callback_side = pickle.loads(pickle.dumps(tracker))
    assert callback_side.state == state and callback_side._runs == {}
    tracker.close()  # the session ends (Ctrl-C): its open trials are unfinished

    # --resume: the driver's tracker from run.json, the trials' side from Tune's pickle.
    driver_side = WandbTracker(Spec.parse("wandb=my-project"), search, state)
    assert driver_side.start(resumed=True) == state
    callback_side.trial_started("t1", "trial_t1", {"lr": 0.01})
    callback_side.epoch("t1", 2, {"val_acc": 0.75})
    callback_side.trial_ended("t1", "completed", {"val_acc": 0.75})
    finish(driver_side, {"t1": "completed"}, WINNER)

    runs = read_runs(search.local_dir)
    assert set(runs) == {tracker.run_id("t1"), tracker.run_id(SEARCH)}
    first, second = runs[tracker.run_id("t1")]
    assert first["group"] == second["group"] == state["group"]
    assert first["project"] == second["project"] == "my-project"
    assert (first["exit_code"], first["summary"]["outcome"]) == (1, "unfinished")
    assert (second["exit_code"], second["summary"]["outcome"]) == (0, "completed")
    assert epochs(first) == [(1, 0.5)] and epochs(second) == [(2, 0.75)]
    ((whole,),) = [runs[tracker.run_id(SEARCH)]]
    assert whole["summary"]["winner"]["run_id"] == tracker.run_id("t1")


def test_an_interrupted_search_ends_its_open_runs_unfinished(wandb_offline, tmp_path):
    search = search_info(tmp_path)
    tracker = WandbTracker(Spec("wandb"), search)
    tracker.start(resumed=False)
    tracker.trial_started("t1", "trial_t1", {"lr": 0.01})
    tracker.epoch("t1", 1, {"val_acc": 0.5})
    finish(tracker, {"t1": "unfinished"}, None, interrupted=True)
    runs = read_runs(search.local_dir)
    ((t1,),) = [runs[tracker.run_id("t1")]]
    assert (t1["exit_code"], t1["summary"]["outcome"]) == (1, "unfinished")
    ((whole,),) = [runs[tracker.run_id(SEARCH)]]
    assert (whole["exit_code"], whole["summary"]["interrupted"]) == (1, True)
    assert "winner" not in whole["summary"] and whole["artifacts"] == []


def test_a_failing_wandb_call_is_one_warning_line_and_the_runs_are_let_go(
    wandb_offline, tmp_path, monkeypatch, capfd
):
    search = search_info(tmp_path)
    trackers = tracking.build(["wandb"], search)  # as the driver builds them
    (tracker,) = trackers
    assert isinstance(tracker, WandbTracker)
    trackers.start(resumed=False)
    trackers.call("trial_started", "t1", "trial_t1", {"lr": 0.01})
    trackers.call("epoch", "t1", 1, {"val_acc": 0.5})

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wandb.Run, "log", full_disk)
    trackers.call("epoch", "t1", 2, {"val_acc": 0.75})
    trackers.call("epoch", "t1", 3, {"val_acc": 0.8})  # left out: not called again
    out, err = capfd.readouterr()
    assert out == ""
    assert err == (
        "search.run: warning: wandb tracking stopped (OSError: [Errno 28] No space left on "
        "device); the search goes on without it\n"
    )
    assert not trackers
    ((t1,),) = [read_runs(search.local_dir)[tracker.run_id("t1")]]
    assert (t1["exit_code"], t1["summary"]["outcome"]) == (1, "unfinished")  # let go of
    assert epochs(t1) == [(1, 0.5)]


def test_online_without_an_api_key_or_with_a_bad_project_is_refused_before_the_search(
    wandb_offline, tmp_path, monkeypatch
):
    # Online, wandb.init would ask for a key at the terminal, in the middle of a search.
    monkeypatch.setenv("WANDB_MODE", "online")
    wandb.teardown()
    tracker = WandbTracker(Spec("wandb"), search_info(tmp_path))
    with pytest.raises(UserError, match="no W&B API key; run `wandb login`"):
        tracker.check()
    tracker = WandbTracker(Spec.parse("wandb=team/project"), search_info(tmp_path, "t"))
    with pytest.raises(UserError, match="Invalid project name 'team/project'"):
        tracker.check()


# ---------------------------------------------------------------- a search's runs


def assert_wandb_has_the_search(run_dir: Path) -> None:
    """A finished search's offline runs (tests/test_track_mlflow.py runs one search with
    every tracker): one run per trial of trials.csv with its hyperparameters and every
    epoch it trained, and the search's run with the flags, the counts and the winner."""
    state = RunRecord.read(run_dir).tracking["wandb"]
    tracker = WandbTracker(Spec("wandb"), None, state)  # for its run ids
    table = read_trials(run_dir / TRIALS_CSV)
    runs = read_runs(run_dir)
    assert set(runs) == {tracker.run_id(t) for t in [*table["trial_id"], SEARCH]}
    for row in table.itertuples():
        ((run,),) = [runs[tracker.run_id(row.trial_id)]]
        assert run["group"] == state["group"] and run["job_type"] == "trial"
        assert run["config"]["lr"] == pytest.approx(row.lr)
        assert run["config"]["hidden_size"] == row.hidden_size
        history = epochs(run)
        assert [epoch for epoch, _ in history] == list(range(1, row.epochs + 1))
        assert history[-1][1] == pytest.approx(row.val_acc)
        assert run["summary"]["outcome"] == row.status
    ((whole,),) = [runs[tracker.run_id(SEARCH)]]
    winner = json.loads((run_dir / BEST_CONFIG).read_text())
    assert whole["summary"]["winner"]["trial_id"] == winner["trial_id"]
    assert whole["summary"]["winner"]["hyperparameters"] == winner["hyperparameters"]
    counts = table["status"].value_counts().to_dict()
    assert {k: whole["summary"][f"trials_{k}"] for k in counts} == counts
    assert whole["config"]["flags"]["trials"] == len(table) and whole["state"] == "finished"
    # The report is built after the search: the search's run names the folder it is in.
    assert (run_dir / "report" / "index.html").is_file()
    assert whole["config"]["run_folder"] == str(run_dir)
