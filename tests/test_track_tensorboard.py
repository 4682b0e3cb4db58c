"""`--track tensorboard`: event files under the run folder, read back the way TensorBoard
itself reads them (its own loader and its HParams plugin), so that what is checked here is
what `tensorboard --logdir runs/NAME` shows. The tracker is called directly in seconds;
what a real search wrote is checked by `assert_tensorboard_has_the_search`, for the tiny
search of tests/test_track_mlflow.py that runs every tracker at once."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import pytest

from search import tracking
from search.errors import UserError
from search.run_folder import TRIALS_CSV, read_trials, trial_dir
from search.space import PARAMS, SEED_CONFIG
from search.tracking import SearchInfo, Spec, Trackers
from search.tracking.tensorboard_tracker import FOLDER, TensorBoardTracker
from tests.run_checks import epochs_reported

HYPERPARAMETERS = {"hidden_size": 64, "lr": 0.01, "dropout": 0.25, "batch_size": 100}


def search_info(local_dir: Path | None, location: str | None = None) -> SearchInfo:
    return SearchInfo(
        name="x",
        location=location or str(local_dir),
        local_dir=local_dir,
        dataset="mnist",
        flags={"trials": 2},
        command="python -m search.run",
        metric="val_acc",
    )


def tracker(run_dir: Path) -> TensorBoardTracker:
    return TensorBoardTracker(Spec("tensorboard"), search_info(run_dir))


def figures(epoch: int, shift: float = 0.0) -> dict[str, float]:
    return {
        "val_acc": 0.1 * epoch + shift,
        "val_loss": 2.0 / epoch + shift,
        "val_area": 0.05 * epoch,
    }


def tensorboard_view(logdir: Path) -> tuple[dict, dict]:
    """What TensorBoard shows of `logdir`, read by its own loader (the Python one):
    ({run: {tag: [(step, value), ...]}}, {run: (hyperparameters, {metric: last value})})
    where the second is its HParams view (the plugin's list of session groups). These
    are TensorBoard's inner modules: an upgrade that moves them breaks this helper only."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups
    from tensorboard.util import tensor_util

    events = plugin_event_multiplexer.EventMultiplexer()
    events.AddRunsFromDirectory(str(logdir))
    events.Reload()
    scalars = {}
    for run, tags in events.Runs().items():
        accumulator = events.GetAccumulator(run)
        scalars[run] = {
            tag: [
                (e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                for e in accumulator.Tensors(tag)
            ]
            for tag in tags["tensors"]
            if not tag.startswith("_hparams_")
        }
    tb = base_plugin.TBContext(
        logdir=str(logdir),
        data_provider=data_provider.MultiplexerDataProvider(events, str(logdir)),
        multiplexer=events,
    )
    request = api_pb2.ListSessionGroupsRequest(
        allowed_statuses=list(api_pb2.Status.values()), include_metrics=True, slice_size=1000
    )
    handler = list_session_groups.Handler(
        context.RequestContext(), backend_context.Context(tb), "", request
    )
    view = {}
    for group in handler.run().session_groups:
        hyperparameters = {k: _plain(v) for k, v in group.hparams.items()}
        view[group.name] = (hyperparameters, {m.name.tag: m.value for m in group.metric_values})
    return scalars, view


def _plain(value):
    return getattr(value, value.WhichOneof("kind"))  # number_value, string_value, ...


def steps(scalars: dict, tag: str) -> dict[int, float]:
    found = dict(scalars[tag])
    assert len(found) == len(scalars[tag]), f"{tag}: one value per step, got {scalars[tag]}"
    return found


def wait_for_the_next_second() -> None:
    """TensorBoard reads a run's event files in the order of their names, which begin
    with the second each was opened; a resumed search, or a retried trial, is seconds
    later than the session before it."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)


# ---------------------------------------------------------------- the tracker alone


def test_every_epoch_of_every_trial_and_their_hyperparameters_are_in_tensorboard(tmp_path):
    board = tracking.build(["tensorboard"], search_info(tmp_path)).trackers[0]
    assert isinstance(board, TensorBoardTracker)  # found by its kind
    board.check()  # a local run folder
    board.trial_started("a", "trial_a", HYPERPARAMETERS)
    board.trial_started("b", "trial_b", {**HYPERPARAMETERS, "hidden_size": 32, "patch": 4})
    for epoch in (1, 2, 3):
        board.epoch("a", epoch, figures(epoch))
    board.epoch("b", 1, figures(1, shift=0.5) | {"train_loss": 0.75})
    board.trial_ended("b", "stopped", figures(1, shift=0.5))
    board.trial_ended("a", "completed", figures(3))
    board.close()

    scalars, view = tensorboard_view(tmp_path / FOLDER)
    assert set(scalars) == {"trial_a", "trial_b"}
    for key in ("val_acc", "val_loss", "val_area"):
        expected = {e: pytest.approx(figures(e)[key]) for e in (1, 2, 3)}
        assert steps(scalars["trial_a"], key) == expected
    assert steps(scalars["trial_b"], "train_loss") == {1: 0.75}

    a_hyperparameters, a_metrics = view["trial_a"]
    assert a_hyperparameters == {**HYPERPARAMETERS, "outcome": "completed"}
    # The metric columns are the trial's last values of its scalars.
    assert a_metrics == {k: pytest.approx(v) for k, v in figures(3).items()}
    b_hyperparameters, b_metrics = view["trial_b"]
    assert b_hyperparameters["outcome"] == "stopped" and b_hyperparameters["patch"] == 4
    assert b_metrics["train_loss"] == 0.75 and b_metrics["val_acc"] == pytest.approx(0.6)


def test_a_resumed_trial_shows_each_epoch_once_with_its_newest_values(tmp_path):
    first = tracker(tmp_path)
    first.trial_started("a", "trial_a", HYPERPARAMETERS)
    for epoch in (1, 2, 3):
        first.epoch("a", epoch, figures(epoch))
    saved = pickle.dumps(first)  # Tune's copy of the callback, as it restores it
    first.close()  # the driver was stopped after epoch 3; its last checkpoint was epoch 1
    wait_for_the_next_second()

    resumed = pickle.loads(saved)
    resumed.trial_started("a", "trial_a", HYPERPARAMETERS)
    for epoch in (2, 3, 4):  # Tune replays the epochs after the checkpoint
        resumed.epoch("a", epoch, figures(epoch, shift=0.5))
    resumed.trial_ended("a", "completed", figures(4, shift=0.5))
    resumed.close()

    assert len(list((tmp_path / FOLDER / "trial_a").glob("events.out.tfevents.*"))) == 2
    scalars, view = tensorboard_view(tmp_path / FOLDER)
    newest = {1: figures(1), **{e: figures(e, shift=0.5) for e in (2, 3, 4)}}
    for key in ("val_acc", "val_loss"):
        assert steps(scalars["trial_a"], key) == {
            e: pytest.approx(values[key]) for e, values in newest.items()
        }
    assert view["trial_a"][1]["val_acc"] == pytest.approx(0.9)


def test_a_retried_trial_in_the_same_session_shows_each_epoch_once(tmp_path):
    board = tracker(tmp_path)
    board.trial_started("a", "trial_a", HYPERPARAMETERS)
    board.epoch("a", 1, figures(1))
    board.epoch("a", 2, figures(2))
    wait_for_the_next_second()
    board.trial_started("a", "trial_a", HYPERPARAMETERS)  # its worker died: from epoch 1
    board.epoch("a", 2, figures(2, shift=0.5))
    board.trial_ended("a", "completed", figures(2, shift=0.5))
    board.close()

    scalars, _ = tensorboard_view(tmp_path / FOLDER)
    assert steps(scalars["trial_a"], "val_acc") == {1: pytest.approx(0.1), 2: pytest.approx(0.7)}


def test_it_pickles_with_open_writers_and_goes_on_after(tmp_path):
    board = tracker(tmp_path)
    board.trial_started("a", "trial_a", HYPERPARAMETERS)
    board.epoch("a", 1, figures(1))
    copy = pickle.loads(pickle.dumps(board))
    assert board._writers and not copy._writers  # the open writer stays with `board`
    board.close()
    copy.epoch("a", 2, figures(2))
    copy.trial_ended("a", "completed", figures(2))
    copy.close()
    scalars, view = tensorboard_view(tmp_path / FOLDER)
    assert set(steps(scalars["trial_a"], "val_acc")) == {1, 2}
    assert view["trial_a"][0] == {**HYPERPARAMETERS, "outcome": "completed"}


def test_a_run_folder_in_an_object_store_is_refused_in_one_line():
    board = TensorBoardTracker(Spec("tensorboard"), search_info(None, "s3://bucket/runs/x"))
    with pytest.raises(UserError) as refused:
        board.check()
    message = str(refused.value)
    assert "\n" not in message and "s3://bucket/runs/x" in message
    assert "--storage-path" in message  # what to do about it


def test_a_failure_to_write_is_one_warning_and_the_tracker_is_left_out(tmp_path, capsys):
    (tmp_path / FOLDER).write_text("not a folder")  # no trial's folder can be made
    trackers = Trackers([tracker(tmp_path)])
    trackers.call("trial_started", "a", "trial_a", HYPERPARAMETERS)
    trackers.call("epoch", "a", 1, figures(1))
    trackers.call("epoch", "a", 2, figures(2))
    assert not trackers
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "warning: tensorboard tracking stopped" in lines[0]


# ---------------------------------------------------------------- a search's files


def assert_tensorboard_has_the_search(run_dir: Path) -> None:
    """A finished search's event files (tests/test_track_mlflow.py runs one search with
    every tracker): every epoch of every trial as Tune recorded it, and each trial's
    hyperparameters and outcome in the HParams view."""
    table = read_trials(run_dir / TRIALS_CSV)
    reported = epochs_reported(run_dir)
    scalars, view = tensorboard_view(run_dir / FOLDER)
    assert set(scalars) == set(view) == {trial_dir(t) for t in table["trial_id"]}
    for _, row in table.iterrows():
        name = trial_dir(row["trial_id"])
        epochs = [r for r in reported[name] if "epoch" in r]
        assert len(epochs) == row["epochs"] >= 1
        for key in ("val_acc", "val_loss", "val_area"):
            # What Tune recorded of each epoch, as TensorBoard holds it (in 32 bits).
            expected = {r["epoch"]: pytest.approx(r[key], rel=1e-6) for r in epochs}
            assert steps(scalars[name], key) == expected
        hyperparameters, metrics = view[name]
        assert hyperparameters["outcome"] == row["status"]
        assert set(SEED_CONFIG) <= set(hyperparameters)  # `patch` where it is searched
        for key in set(PARAMS) & set(hyperparameters):
            assert hyperparameters[key] == pytest.approx(row[key]), key
        assert metrics["val_acc"] == pytest.approx(epochs[-1]["val_acc"], rel=1e-6)
