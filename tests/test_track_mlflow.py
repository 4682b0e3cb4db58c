"""--track and MLflow: the flag's checks, a failing tracker as one warning line, and a
real `mlflow server` (SQLite, loopback) read back through MlflowClient: the parent run,
a child per trial with its epochs and outcome, the artifacts; also after a SIGKILL and
--resume, and when the server dies in the middle of a search. One search runs every
tracker at once (TensorBoard's and W&B's files are checked by their own tests' helpers).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys

import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")  # the `mlflow` extra, in the test extra
from mlflow.tracking import MlflowClient  # noqa: E402

from bench.mlflow_server import MlflowServer  # noqa: E402
from search import tracking  # noqa: E402
from search.config import parse_args  # noqa: E402
from search.run_folder import (  # noqa: E402
    BEST_CONFIG,
    RESULT_JSON,
    TRIALS_CSV,
    read_trials,
    trial_dir,
)
from search.run_record import RunRecord  # noqa: E402
from search.tracking import SearchEnd, SearchInfo, Spec, Tracker, Trackers  # noqa: E402
from search.tracking.mlflow_tracker import EXPERIMENT, LOST, PARENT_TAG  # noqa: E402
from tests.conftest import REPO, tiny_search_args, write_idx_folder  # noqa: E402
from tests.test_cli import run_cli  # noqa: E402

# ---------------------------------------------------------------- the flag


@pytest.mark.parametrize(
    "value, says",
    [
        ("comet", "unknown tracker 'comet'; choose from tensorboard, mlflow, wandb"),
        ("mlflow=", "mlflow= needs a tracking URI after '='"),
        ("tensorboard=x", "tensorboard takes no value"),
    ],
)
def test_a_bad_tracker_is_one_line_and_exit_2(value, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--track", value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err


def test_a_tracker_whose_library_is_missing_is_refused_with_its_extra(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(SystemExit):
        parse_args(["--track", "mlflow", "--track", "wandb"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "--track wandb needs wandb, which is not installed: pip install 'lstm-search[wandb]'"
        in err
    )


def test_track_is_repeatable_and_takes_several_at_once():
    config = parse_args(["--track", "mlflow=http://h:5000", "--track", "tensorboard", "wandb"])
    assert config.track == ["mlflow=http://h:5000", "tensorboard", "wandb"]
    assert parse_args([]).track is None
    assert Spec.parse("MLflow=http://h:5000") == Spec("mlflow", "http://h:5000")


# ---------------------------------------------------------------- failures


class Recorder(Tracker):
    kind = "recorder"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def epoch(self, trial_id, epoch, figures):
        self.calls.append(f"{trial_id}:{epoch}")
        if self.fail_on == "epoch":
            raise ConnectionError("server\nwent away")

    def close(self):
        self.calls.append("close")


def test_a_tracker_that_fails_is_one_warning_line_and_left_out(capsys):
    broken, fine = Recorder(fail_on="epoch"), Recorder()
    broken.kind = "mlflow"
    trackers = Trackers([broken, fine])
    for epoch in (1, 2, 3):
        trackers.call("epoch", "t1", epoch, {})
    err = capsys.readouterr().err
    assert err == (
        "search.run: warning: mlflow tracking stopped (ConnectionError: server went away); "
        "the search goes on without it\n"
    )
    assert broken.calls == ["t1:1", "close"]  # let go of at once, never called again
    assert fine.calls == ["t1:1", "t1:2", "t1:3"]
    assert list(trackers) == [fine]
    # Tune keeps the trials' side with its state: a --resume tries the tracker again.
    assert [t.kind for t in pickle.loads(pickle.dumps(trackers))] == ["mlflow", "recorder"]


def test_the_trials_side_runs_on_its_own_thread_in_order_and_call_waits_for_it():
    import threading
    import time

    class Slow(Recorder):
        def epoch(self, trial_id, epoch, figures):
            time.sleep(0.05)  # a slow server
            self.calls.append((f"{trial_id}:{epoch}", threading.current_thread().name))

    slow = Slow()
    trackers = Trackers([slow])
    started = time.perf_counter()
    for epoch in range(1, 6):
        trackers.later("epoch", "t1", epoch, {})
    assert time.perf_counter() - started < 0.05  # Tune's loop did not wait
    trackers.call("close")  # the search's side: after every queued call
    assert slow.calls == [(f"t1:{e}", "trackers") for e in range(1, 6)] + ["close"]


# ---------------------------------------------------------------- MLflow, on a local store


def search_info(tmp_path, name="s", local_dir=None) -> SearchInfo:
    return SearchInfo(
        name=name,
        location=str(tmp_path / name),
        local_dir=local_dir,  # None: no best/ to upload, no result.json to read
        dataset="mnist-5k",
        flags={"trials": 3, "name": name, "track": ["mlflow"], "study_name": None},
        command=f"python -m search.run --name={name}",
        metric="val_acc",
    )


def tune_logged(run_dir, trial_id: str, *accs: float) -> None:
    """A trial's result.json, as Tune's JSON logger writes it: epochs 1, 2, ..."""
    folder = run_dir / trial_dir(trial_id)
    folder.mkdir(parents=True)
    lines = [json.dumps({"epoch": e, "val_acc": acc}) for e, acc in enumerate(accs, 1)]
    (folder / RESULT_JSON).write_text("\n".join(lines) + "\n")


def children(client: MlflowClient, parent: str) -> dict[str, object]:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'"
    )
    return {run.data.tags["trial_id"]: run for run in runs}


def steps(client: MlflowClient, run_id: str, key: str = "val_acc") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """A local store keeps its artifacts in ./mlruns: here, not in the checkout."""
    monkeypatch.chdir(tmp_path)


def test_mlflow_tracker_through_a_resume_on_a_local_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "s"
    (run_dir / "best").mkdir(parents=True)
    (run_dir / "best" / "config.json").write_text("{}")
    first = tracking.build([f"mlflow={uri}"], search_info(tmp_path, local_dir=run_dir))
    state = first.start(resumed=False)["mlflow"]
    assert state["tracking_uri"] == uri and state["run_id"]
    for trial, hidden in (("a", 128), ("b", 64), ("c", 32), ("d", 16), ("e", 8)):
        first.call("trial_started", trial, f"trial_{trial}", {"hidden_size": hidden, "lr": 1e-3})
    for epoch, acc in ((1, 0.5), (2, 0.7)):
        first.call("epoch", "a", epoch, {"val_acc": acc, "val_loss": 1 / epoch})
    first.call("trial_ended", "a", "completed", {"val_acc": 0.7})  # sent: it ended
    # Epochs held back (sent together, at most every FLUSH_SECONDS) when the driver is
    # killed: Tune's result.json has them.
    first.call("epoch", "b", 1, {"val_acc": 0.4})
    for epoch, acc in ((1, 0.3), (2, 0.35)):
        first.call("epoch", "d", epoch, {"val_acc": acc})
    first.call("epoch", "e", 1, {"val_acc": 0.2})
    tune_logged(run_dir, "d", 0.3, 0.35)
    tune_logged(run_dir, "e", 0.2)
    # Tune's saved state has its callbacks as they were pickled, and knows trials a, b, d
    # and e (e as stopped at epoch 1), not c (started just before the kill).
    (resumed_tracker,) = pickle.loads(pickle.dumps(first)).trackers
    resumed = Trackers([resumed_tracker])
    assert resumed.start(resumed=True)["mlflow"] == state
    resumed.call("trial_started", "b", "trial_b", {"hidden_size": 64, "lr": 1e-3})
    for epoch, acc in ((1, 0.41), (2, 0.6)):  # replayed from its start: nothing was sent
        resumed.call("epoch", "b", epoch, {"val_acc": acc})
    resumed.call("trial_ended", "b", "stopped", {"val_acc": 0.6})
    resumed.call("trial_started", "d", "trial_d", {"hidden_size": 16, "lr": 1e-3})
    resumed.call("epoch", "d", 3, {"val_acc": 0.45})  # from its checkpoint at epoch 2
    resumed.call("trial_ended", "d", "completed", {"val_acc": 0.45})
    table = pd.DataFrame(
        {
            "trial_id": ["a", "b", "d", "e"],
            "status": ["completed", "stopped", "completed", "stopped"],
            "epochs": [2, 2, 3, 1],
        }
    )
    winner = {
        "trial_id": "a",
        "hyperparameters": {"hidden_size": 128, "lr": 1e-3},
        "chosen_by": "val_acc",
        "val_acc": 0.7,
        "epoch": 2,
    }
    counts = {"completed": 2, "stopped": 2}
    resumed.finish(SearchEnd(table, winner, False, counts))

    client = MlflowClient(uri)
    parent = client.get_run(state["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "s"
    assert parent.data.params["trials"] == "3" and "study_name" not in parent.data.params
    assert parent.data.tags["dataset"] == "mnist-5k"
    assert parent.data.tags["winner.trial_id"] == "a"
    assert parent.data.tags["winner.hidden_size"] == "128"
    assert parent.data.metrics["winner_val_acc"] == 0.7
    assert parent.data.metrics["trials_completed"] == 2
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "best")] == [
        "best/config.json"
    ]
    found = children(client, state["run_id"])
    assert set(found) == {"a", "b", "c", "d", "e"}  # nothing made twice
    assert parent.data.tags["winner.run_id"] == found["a"].info.run_id
    assert found["a"].data.params == {"hidden_size": "128", "lr": "0.001"}
    assert found["b"].data.params == {"hidden_size": "64", "lr": "0.001"}  # sent resumed
    assert steps(client, found["a"].info.run_id) == [(1, 0.5), (2, 0.7)]
    assert steps(client, found["b"].info.run_id) == [(1, 0.41), (2, 0.6)]
    assert steps(client, found["d"].info.run_id) == [(1, 0.3), (2, 0.35), (3, 0.45)]
    assert steps(client, found["e"].info.run_id) == [(1, 0.2)]  # from result.json, at the end
    outcome = {k: (r.info.status, r.data.tags.get("outcome")) for k, r in found.items()}
    assert outcome == {
        "a": ("FINISHED", "completed"),
        "b": ("FINISHED", "stopped"),
        "c": ("KILLED", LOST),
        "d": ("FINISHED", "completed"),
        "e": ("FINISHED", "stopped"),
    }


def test_epochs_held_back_go_out_in_requests_mlflow_takes(tmp_path, monkeypatch):
    monkeypatch.setattr("search.tracking.mlflow_tracker.BATCH", 3)  # MLflow's: 1,000
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trackers = tracking.build([f"mlflow={uri}"], search_info(tmp_path))
    run_id = trackers.start(resumed=False)["mlflow"]["run_id"]
    trackers.call("trial_started", "a", "trial_a", {"hidden_size": 16})
    accs = [0.1, 0.2, 0.3, 0.4, 0.5]
    for epoch, acc in enumerate(accs, 1):  # within FLUSH_SECONDS: held back
        trackers.call("epoch", "a", epoch, {"val_acc": acc})
    client = MlflowClient(uri)
    assert steps(client, children(client, run_id)["a"].info.run_id) == []
    trackers.call("trial_ended", "a", "completed", {"val_acc": 0.5})
    found = children(client, run_id)["a"]
    assert steps(client, found.info.run_id) == list(enumerate(accs, 1))  # 10 values, 4 requests
    assert found.data.params == {"hidden_size": "16"}
    assert found.data.tags["outcome"] == "completed"


def test_an_interrupted_search_leaves_its_parent_killed_until_resumed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trackers = tracking.build([f"mlflow={uri}"], search_info(tmp_path))
    run_id = trackers.start(resumed=False)["mlflow"]["run_id"]
    trackers.call("trial_started", "a", "trial_a", {"hidden_size": 16})
    table = pd.DataFrame({"trial_id": ["a"], "status": ["unfinished"], "epochs": [0]})
    trackers.finish(SearchEnd(table, None, True, {"unfinished": 1}))
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "KILLED"
    assert children(client, run_id)["a"].info.status == "KILLED"
    again = tracking.build(
        [f"mlflow={uri}"],
        search_info(tmp_path),
        {"mlflow": {"run_id": run_id, "tracking_uri": uri}},
    )
    again.start(resumed=True)
    assert client.get_run(run_id).info.status == "RUNNING"


# ---------------------------------------------------------------- a real server, end to end


@pytest.fixture(scope="module")
def server():
    started = MlflowServer()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_idx_folder(tmp_path_factory.mktemp("digits"), n_train=300, n_test=60)


def search_args(tmp_path, digits, name: str, *extra: str) -> list[str]:
    return tiny_search_args(digits, tmp_path / "runs", name, *extra)


def parent_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:  # no search has started on this server yet
        return []
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlflow.runName` = '{name}'")
    return [r for r in runs if PARENT_TAG not in r.data.tags]


def assert_children_match(client: MlflowClient, parent: str, table: pd.DataFrame) -> dict:
    """One child per trial of trials.csv: its hyperparameters, one value per epoch it
    trained, its outcome; a child whose trial Tune never saved is KILLED and "lost"."""
    found = children(client, parent)
    assert set(table["trial_id"]) <= set(found)
    for trial_id, run in found.items():
        if trial_id not in set(table["trial_id"]):
            assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", LOST)
    for row in table.itertuples():
        run = found[row.trial_id]
        assert run.data.tags["outcome"] == row.status
        assert run.info.status == ("FAILED" if row.status == "failed" else "FINISHED")
        assert float(run.data.params["hidden_size"]) == row.hidden_size
        assert float(run.data.params["lr"]) == pytest.approx(row.lr)
        history = steps(client, run.info.run_id)
        assert [step for step, _ in history] == list(range(1, row.epochs + 1))
        assert history[-1][1] == pytest.approx(row.val_acc)
    return found


@pytest.mark.e2e
def test_a_search_tracked_by_every_tracker_at_once(server, digits, tmp_path, wandb_offline):
    # The trackers' own tests read what this search wrote for them.
    from tests.test_track_tensorboard import assert_tensorboard_has_the_search
    from tests.test_track_wandb import assert_wandb_has_the_search

    args = search_args(tmp_path, digits, "tracked", "--trials", "3", "--max-epochs", "2")
    track = ["--track", f"mlflow={server.uri}", "tensorboard", "--track", "wandb"]
    done = run_cli(*args, "--confirm-top", "1", *track)
    assert done.returncode == 0, done.stderr[-3000:]
    # Neither a failure nor a library's banners between the progress lines.
    for unwanted in ("Traceback", "warning", "wandb:"):
        assert unwanted not in done.stderr, done.stderr
    run_dir = tmp_path / "runs" / "tracked"
    table = read_trials(run_dir / TRIALS_CSV)
    client = MlflowClient(server.uri)
    (parent,) = parent_runs(client, "tracked")
    record = RunRecord.read(run_dir)
    assert record.tracking["mlflow"]["run_id"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.params["trials"] == "3" and parent.data.params["max_epochs"] == "2"
    assert parent.data.tags["dataset"] == record.dataset
    found = assert_children_match(client, parent.info.run_id, table)
    assert len(found) == 3
    winner = json.loads((run_dir / BEST_CONFIG).read_text())
    assert parent.data.tags["winner.trial_id"] == winner["trial_id"]
    assert parent.data.tags["winner.run_id"] == found[winner["trial_id"]].info.run_id
    assert parent.data.metrics["winner_confirmed_acc"] == pytest.approx(winner["confirmed_acc"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "best")}
    assert {"best/config.json", "best/model.pt"} <= artifacts
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/index.html" in report
    assert_tensorboard_has_the_search(run_dir)
    assert_wandb_has_the_search(run_dir)


@pytest.mark.e2e
def test_sigkill_then_resume_continues_the_same_parent(server, digits, tmp_path):
    from tests.test_resume import Search, run_search, wait_for

    args = search_args(
        tmp_path, digits, "killed", "--trials", "6", "--max-epochs", "2", "--confirm-top", "0",
        "--track", f"mlflow={server.uri}",
    )  # fmt: skip
    client = MlflowClient(server.uri)

    def trials_with_epochs() -> int:
        parents = parent_runs(client, "killed")
        if not parents:
            return 0
        return sum(
            "val_acc" in r.data.metrics for r in children(client, parents[0].info.run_id).values()
        )

    search = Search(*args)
    try:
        wait_for(lambda: trials_with_epochs() >= 3, timeout=300, what="three trials to log")
    finally:
        search.kill_group()  # driver, Ray and trials: a closed terminal
    (parent,) = parent_runs(client, "killed")
    assert client.get_run(parent.info.run_id).info.status == "RUNNING"  # as it was killed

    code, _, err = run_search(*args, "--resume")
    assert code == 0, err[-3000:]
    assert "warning" not in err
    run_dir = tmp_path / "runs" / "killed"
    table = read_trials(run_dir / TRIALS_CSV)
    assert len(table) == 6
    (same,) = parent_runs(client, "killed")  # no second parent
    assert (
        same.info.run_id
        == parent.info.run_id
        == RunRecord.read(run_dir).tracking["mlflow"]["run_id"]
    )
    assert same.info.status == "FINISHED"
    assert same.data.metrics["trials_completed"] + same.data.metrics.get("trials_stopped", 0) == 6
    assert_children_match(client, parent.info.run_id, table)


@pytest.mark.e2e
def test_a_server_that_dies_mid_search_is_one_warning_and_the_search_goes_on(digits, tmp_path):
    from tests.test_resume import Search, wait_for

    dying = MlflowServer()
    try:
        args = search_args(
            tmp_path, digits, "orphan", "--trials", "4", "--max-epochs", "2",
            "--confirm-top", "0", "--no-report", "--track", f"mlflow={dying.uri}",
        )  # fmt: skip
        search = Search(*args)
        client = MlflowClient(dying.uri)
        try:
            wait_for(lambda: bool(parent_runs(client, "orphan")), timeout=300, what="the parent")
            dying.stop()
            code, _, err = search.wait(timeout=600)
        finally:
            search.kill_group()
    finally:
        dying.stop()
    assert code == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "mlflow tracking stopped" in warnings[0], err[-3000:]
    assert "Traceback" not in err
    assert len(read_trials(tmp_path / "runs" / "orphan" / TRIALS_CSV)) == 4


@pytest.mark.e2e
def test_the_readme_s_two_commands_show_the_runs_in_mlflow_s_ui(digits, tmp_path):
    """`python -m search.run --track mlflow`, then `mlflow ui`, in one folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "search.run", "--track", "mlflow",
         *search_args(tmp_path, digits, "here", "--trials", "2", "--max-epochs", "1"),
         "--confirm-top", "0", "--no-report"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ui = MlflowServer(ui_in=tmp_path)
    try:
        client = MlflowClient(ui.uri)
        (parent,) = parent_runs(client, "here")
        table = read_trials(tmp_path / "runs" / "here" / TRIALS_CSV)
        assert_children_match(client, parent.info.run_id, table)
        best = {a.path for a in client.list_artifacts(parent.info.run_id, "best")}
        assert "best/config.json" in best
    finally:
        ui.stop()
