"""The search from Python (`search.api`): flags checked as the command line checks them,
failures as exceptions, and a handle on the run folder. One tiny search end to end; the
rest in seconds, on the hand-built run folder or with the driver replaced."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import search.run
from search import api
from search.config import SearchConfig, build_parser, parse_args
from search.errors import UserError
from search.run_folder import (
    BEST_CONFIG,
    REPORT_DIR,
    TRIALS_CSV,
    TUNER_STATE,
    ranked,
    read_test_split,
    read_trials,
    write_best,
)
from search.storage import RunLocation
from tests.conftest import write_idx_folder

# ---------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("flags", "argv"),
    [
        ({}, []),
        ({"trials": 7, "max_epochs": 3}, ["--trials", "7", "--max-epochs", "3"]),
        ({"time_budget": "15m"}, ["--time-budget", "15m"]),
        ({"time_budget": 90}, ["--time-budget", "90"]),
        ({"objective": "early"}, ["--objective", "early"]),  # and the loss that goes with it
        ({"download": True, "overwrite": False}, ["--download"]),
        ({"warm_start": "old"}, ["--warm-start", "old"]),
        ({"warm_start": ["a", "b"]}, ["--warm-start", "a", "b"]),
        ({"data_dir": Path("digits"), "cv_folds": 0}, ["--data-dir", "digits", "--cv-folds", "0"]),
        ({"storage_path": "-odd"}, ["--storage-path=-odd"]),
        (
            {"reduction_factor": 2.5, "gpus_per_trial": 0.25},
            ["--reduction-factor", "2.5", "--gpus-per-trial", "0.25"],
        ),
    ],
)
def test_flags_build_the_config_the_command_line_builds(flags, argv):
    built = api.configure(name="run", **flags)
    assert built == parse_args(["--name", "run", *argv])
    assert api.configure(built) == built  # a checked config passes unchanged


def test_files_are_made_absolute_as_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    built = api.configure(dataset="series.npz", cluster_config="cluster.yaml")
    assert built.dataset == str(tmp_path / "series.npz")
    assert built.cluster_config == tmp_path / "cluster.yaml"
    # A config made by hand goes through the same parser.
    assert api.configure(SearchConfig(dataset="series.npz")).dataset == built.dataset


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"trials": 0}, "--trials: invalid positive integer value: '0'"),
        ({"trials": 2.5}, "--trials: invalid positive integer"),  # not truncated to 2
        ({"trials": True}, "--trials: invalid positive integer"),
        ({"trials": None}, "--trials: expected a value"),
        ({"objective": "size"}, "--objective: invalid choice: 'size'"),
        ({"loss": "first"}, "--loss: invalid choice"),
        ({"reduction_factor": 1}, "--reduction-factor: invalid number above 1"),
        ({"time_budget": "soon"}, "--time-budget: invalid duration"),
        ({"cv_folds": 1}, "--cv-folds: invalid fold count"),
        ({"name": "../elsewhere"}, "--name: invalid run name"),
        ({"dataset": "digits.csv"}, "--dataset: invalid dataset"),
        ({"download": "yes"}, "--download: expected True or False"),
        ({"warm_start": []}, "--warm-start: expected at least one argument"),
    ],
)
def test_a_value_the_command_line_refuses_is_refused(flags, says):
    with pytest.raises(UserError, match=f"^argument {re.escape(says)}"):
        api.configure(**flags)


def test_a_refusal_after_argparse_is_a_user_error_and_prints_nothing(monkeypatch, capsys):
    # As parse_args refuses a --space file the model cannot take: through the parser.
    def parse_then_refuse(argv):
        build_parser().error("--space file s.toml: [lr] low 0 must be above 0")

    monkeypatch.setattr(api, "parse_args", parse_then_refuse)
    with pytest.raises(UserError, match=r"^--space file s.toml: \[lr\] low 0 must be above 0$"):
        api.configure(trials=3)
    assert capsys.readouterr().err == ""


def test_a_config_made_by_hand_is_checked_before_any_search(monkeypatch):
    from search import driver

    monkeypatch.setattr(driver, "run", _must_not_run)
    with pytest.raises(UserError, match="--grace-epochs: invalid positive integer"):
        api.search(SearchConfig(grace_epochs=0))
    with pytest.raises(UserError, match="--max-concurrent: invalid positive integer"):
        api.run(SearchConfig(max_concurrent=-1))


def test_an_unknown_flag_or_two_ways_at_once_is_a_type_error():
    with pytest.raises(TypeError, match="unknown flag 'trails'; did you mean 'trials'"):
        api.run(trails=3)
    with pytest.raises(TypeError, match="not both"):
        api.run(SearchConfig(), trials=3)


# ---------------------------------------------------------------- search and the CLI over it


def _stopped_by(error: BaseException):
    def raising(config):
        raise error

    return raising


def _must_not_run(config):
    raise AssertionError("the search started")


@pytest.fixture
def started(tmp_path):
    """A run folder whose search had started (Tune's state saved), and its flags."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / TUNER_STATE).write_bytes(b"")
    return api.configure(name="run", storage_path=str(tmp_path))


@pytest.mark.parametrize("stop", [lambda: _driver().Interrupted(), lambda: KeyboardInterrupt()])
def test_ctrl_c_is_interrupted_with_the_resume_command(started, monkeypatch, stop):
    monkeypatch.setattr(_driver(), "run", _stopped_by(stop()))
    with pytest.raises(api.Interrupted) as raised:
        api.search(started)
    # A KeyboardInterrupt still: a notebook's `except Exception` lets it through.
    assert isinstance(raised.value, KeyboardInterrupt)
    assert not isinstance(raised.value, Exception)
    command = raised.value.resume_command
    assert command.startswith(
        f"python -m search.run --name run --storage-path {started.storage_path}"
    )
    assert command.endswith(" --resume")
    assert str(raised.value) == f"interrupted; state saved. Resume with: {command}"


def test_ctrl_c_before_anything_was_saved_has_no_resume_command(tmp_path, monkeypatch):
    monkeypatch.setattr(_driver(), "run", _stopped_by(KeyboardInterrupt()))
    with pytest.raises(api.Interrupted, match="nothing was saved") as raised:
        api.search(api.configure(name="run", storage_path=str(tmp_path)))
    assert raised.value.resume_command is None


def test_a_full_disk_is_a_disk_error_a_user_error_and_a_bug_keeps_its_type(started, monkeypatch):
    driver = _driver()
    monkeypatch.setattr(driver, "run", _stopped_by(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(api.DiskError, match="^stopped at .*: the disk is full") as raised:
        api.search(started)
    assert isinstance(raised.value, UserError)
    assert raised.value.resume_command.endswith(" --resume")

    refused = UserError("--dataset: no such file")
    monkeypatch.setattr(driver, "run", _stopped_by(refused))
    with pytest.raises(UserError) as raised:
        api.search(started)
    assert raised.value is refused

    monkeypatch.setattr(driver, "run", _stopped_by(ZeroDivisionError()))
    with pytest.raises(ZeroDivisionError):  # our bug: its own type and traceback
        api.search(started)


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (KeyboardInterrupt(), 130, "search.run: interrupted; state saved. Resume with: python"),
        (OSError(errno.ENOSPC, "No space left"), 74, "search.run: stopped at "),
        (UserError("no such data"), 2, "search.run: error: no such data"),
    ],
)
def test_the_command_line_turns_the_exceptions_into_a_status_and_one_line(
    started, monkeypatch, capsys, error, code, line
):
    monkeypatch.setattr(_driver(), "run", _stopped_by(error))
    monkeypatch.setattr(search.run, "sigterm_as_ctrl_c", lambda: None)  # pytest's handlers stay
    argv = ["--name", "run", "--storage-path", started.storage_path]
    assert search.run.main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line)


@pytest.mark.parametrize("no_report", [False, True])
def test_run_reports_as_the_command_line_does_unless_told_not_to(tmp_path, monkeypatch, no_report):
    monkeypatch.setattr(_driver(), "run", lambda config: RunLocation.open(tmp_path, config.name))
    reported = []
    monkeypatch.setattr(api.Run, "report", lambda self: reported.append(self.path))
    result = api.run(name="run", storage_path=str(tmp_path), no_report=no_report)
    assert result == api.Run(str(tmp_path / "run"))
    assert reported == ([] if no_report else [tmp_path / "run"])


def test_a_report_that_cannot_be_built_is_logged_and_the_run_returned(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(_driver(), "run", lambda config: RunLocation.open(tmp_path, config.name))

    def refused(self):
        raise UserError("no trial finished an epoch")

    monkeypatch.setattr(api.Run, "report", refused)
    with caplog.at_level(logging.WARNING, logger="search.api"):
        result = api.run(name="run", storage_path=str(tmp_path))
    assert result.path == tmp_path / "run"
    assert "no trial finished an epoch" in caplog.text


def _driver():
    from search import driver  # torch and Ray: imported by the tests that need it

    return driver


# ---------------------------------------------------------------- the handle


def test_the_handle_reads_the_run_folder(fake_run):
    run = api.Run.open(fake_run)
    assert run.path == fake_run and run.local
    trials = run.trials
    assert trials.equals(read_trials(fake_run / TRIALS_CSV))
    assert len(trials) == 6 and trials["trial_id"].str.startswith("a").all()
    assert run.record.dataset == "mnist" and run.record.flags["trials"] == 6
    with pytest.raises(UserError, match="has no winner"):  # the folder has no best/ yet
        run.best  # noqa: B018


@pytest.fixture
def with_winner(fake_run, tmp_path) -> Path:
    """A copy of the fake run with its winner in best/, as a finished search leaves it."""
    run_dir = tmp_path / "fake"
    shutil.copytree(fake_run, run_dir)
    write_best(
        RunLocation.open(tmp_path, "fake"),
        read_trials(run_dir / TRIALS_CSV),
        classes=list(range(10)),
    )
    return run_dir


def test_the_winner_is_the_best_ranked_trial_and_classifies(with_winner):
    run = api.Run.open(with_winner)
    assert run.best_config == json.loads((with_winner / BEST_CONFIG).read_text())
    assert run.best_config["trial_id"] == ranked(run.trials).iloc[0]["trial_id"]
    test = read_test_split(with_winner)
    predicted = run.best.predict(test.values.numpy())
    assert len(predicted) == len(test.labels) and set(predicted) <= set(range(10))


def test_open_refuses_what_is_not_a_run_folder(tmp_path, fake_run):
    with pytest.raises(UserError, match="is not a run folder: it has no run.json"):
        api.Run.open(tmp_path)
    old = tmp_path / "old"
    shutil.copytree(fake_run, old)
    record = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**record, "format_version": 1}))
    with pytest.raises(UserError, match="made by an older version"):
        api.Run.open(old)


def test_a_run_in_an_object_store_says_to_copy_it_here():
    run = api.Run("s3://bucket/runs/x", local=False)
    with pytest.raises(UserError, match="s3://bucket/runs/x is in an object store: copy it"):
        run.trials  # noqa: B018


def _report_program(calls: list, code: int = 0, stderr: str = ""):
    """`subprocess` for `Run.report`, running a stand-in of analysis.report that writes
    index.html at once (or fails with `code`), and recording each command in `calls`."""

    def run_command(command, **kwargs):
        calls.append(command)
        if code:
            return subprocess.CompletedProcess(command, code, stdout="", stderr=stderr)
        index = Path(command[3]) / REPORT_DIR / api.REPORT_INDEX
        index.parent.mkdir(exist_ok=True)
        index.write_text("<html></html>")
        return subprocess.CompletedProcess(command, 0, stdout=f"{index}\n", stderr="")

    return SimpleNamespace(run=run_command)


def test_the_report_is_built_once_and_again_for_another_top_k(with_winner, monkeypatch):
    calls = []
    monkeypatch.setattr(api, "subprocess", _report_program(calls))
    run = api.Run.open(with_winner)
    index = with_winner / REPORT_DIR / "index.html"
    assert run.report() == index
    assert run.report() == index  # there already: not built again
    assert calls == [[sys.executable, "-m", "analysis.report", str(with_winner)]]
    assert run.report(top_k=2) == index
    assert calls[-1][-2:] == ["--top-k", "2"]


def test_a_report_refused_is_a_user_error_and_a_failed_one_a_runtime_error(fake_run, monkeypatch):
    run = api.Run.open(fake_run)
    refusal = "analysis.report: error: no trial finished an epoch\n"
    monkeypatch.setattr(api, "subprocess", _report_program([], 2, refusal))
    with pytest.raises(UserError, match="^no trial finished an epoch$"):
        run.report()
    traceback = "Traceback (most recent call last):\n  ...\nKeyError: 'val_acc'\n"
    monkeypatch.setattr(api, "subprocess", _report_program([], 1, traceback))
    with pytest.raises(RuntimeError, match="(?s)the run folder is whole:\nTraceback.*KeyError"):
        run.report()


def test_importing_the_api_imports_neither_torch_nor_ray():
    code = (
        "import sys, search.api\n"
        "print(sorted({'torch', 'ray', 'pandas', 'optuna'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- end to end


@pytest.mark.e2e
def test_the_python_api_runs_a_tiny_search_and_returns_its_trials_and_winner(tmp_path):
    data_dir = write_idx_folder(tmp_path / "digits", n_train=300, n_test=60)
    handler = signal.getsignal(signal.SIGTERM)  # the search installs its own
    environment = dict(os.environ)
    try:
        result = api.run(
            dataset="mnist",
            data_dir=data_dir,
            trials=2,
            max_epochs=1,
            cv_folds=0,
            confirm_top=0,
            storage_path=tmp_path / "runs",
            name="api",
            seed=1,
        )
    finally:
        signal.signal(signal.SIGTERM, handler)
    # Tune's quieting (e.g. no automatic loggers) must not leak into what the caller
    # starts next: a stock Tune run after it found no result.json.
    assert dict(os.environ) == environment
    assert result == api.Run.open(tmp_path / "runs" / "api")
    trials = result.trials
    assert len(trials) == 2 and set(trials["status"]) == {"completed"}
    assert result.best_config["trial_id"] in set(trials["trial_id"])
    test = read_test_split(result.path)
    predicted = result.best.predict(test.values.numpy())
    assert len(predicted) == 60 and set(predicted) <= set(range(10))
    # The report was built with the search, as the command line builds it.
    report = result.report()
    assert report == result.path / REPORT_DIR / "index.html" and report.stat().st_size > 0
    assert result.record.flags["trials"] == 2 and result.record.sessions == 1
