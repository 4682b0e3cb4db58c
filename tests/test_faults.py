"""What the machine does to a search: the run folder's disk fails (full, over quota,
read-only, gone), Ray kills a trial for memory, the cluster's head is lost.

The quick tests check each piece: which errors are disk faults, the trial's checkpoint
write, the driver's watch and the resume's check of the saved state. The end-to-end
tests mount file systems (root only) under a real search: the disk fills, or the mount
holding the run folder drops, mid-search. The search ends in one line with exit status
74, and the printed resume command completes it once the disk is back, no trial failed.
Another kills the Ray head under a search (exit 69, one line) and resumes it on a new
cluster; another has Ray's memory monitor kill a trial's worker.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from optuna.exceptions import StorageInternalError
from ray.exceptions import OutOfMemoryError
from ray.tune.error import TuneError

from search import driver, faults
from search.config import parse_args
from search.errors import UserError
from search.faults import (
    DiskFault,
    StorageWatch,
    disk_fault_cause,
    latest_error,
    memory_kill,
    trial_disk_fault,
)
from search.run_folder import TRIALS_CSV
from search.storage import RunLocation
from tests import ray_nodes
from tests.conftest import SMALL_NETS
from tests.ray_nodes import Node, free_port, token_env, wait_for_nodes
from tests.test_promises import session, train  # noqa: F401 (session: a fixture)
from tests.test_resume import Search, assert_study_matches, epochs_reported, wait_for

PYARROW_ENOSPC = (
    "[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
)


def chained(*errors: BaseException) -> BaseException:
    """errors[0] raised from errors[1] raised from ... (as a library wraps an OSError)."""
    for outer, inner in zip(errors, errors[1:], strict=False):
        outer.__cause__ = inner
    return errors[0]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(PYARROW_ENOSPC), "the disk is full"),  # pyarrow's: no errno attribute
        (
            chained(
                StorageInternalError("An exception is raised during the commit."),
                sqlite3.OperationalError("database or disk is full"),
            ),
            "the disk is full",
        ),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk quota is exceeded"),
        (OSError(errno.EROFS, "Read-only file system"), "the file system is read-only"),
        (
            sqlite3.OperationalError("attempt to write a readonly database"),
            "the file system is read-only",
        ),
        # A trial's DiskFault reaches the driver as the text of Tune's traceback.
        (
            TuneError("Traceback ...\nsearch.faults.DiskFault: the disk is full\n"),
            "the disk is full",
        ),
        (DiskFault("the run folder disappeared"), "the run folder disappeared"),
        # Ray's, when a checkpoint finds the run folder's marker file gone.
        (RuntimeError("Unable to set up cluster storage with ..."), "the run folder disappeared"),
        (ValueError("bad value"), None),
        (OSError(errno.ENOENT, "No such file or directory"), None),
        (RuntimeError("CUDA out of memory"), None),
        (chained(RuntimeError("wrapped"), KeyError("x")), None),
    ],
)
def test_disk_faults_are_told_apart_from_every_other_error(error, cause):
    assert disk_fault_cause(error) == cause


def test_only_a_failed_write_to_the_run_folder_is_a_trial_disk_fault():
    # The trial's own node running out of /tmp is the trial's failure; a checkpoint the
    # run folder refused is not.
    assert (
        trial_disk_fault(RuntimeError(f"ray::train_lstm() ...\nOSError: {PYARROW_ENOSPC}")) is None
    )
    assert trial_disk_fault(None) is None
    text = "ray::train_lstm() ...\nsearch.faults.DiskFault: the disk quota is exceeded"
    assert trial_disk_fault(RuntimeError(text)) == "the disk quota is exceeded"


# What Ray 2.60 says of a trial's worker its memory monitor killed (abridged).
MEMORY_KILLED = (
    "1 worker(s) were killed due to the node running low on memory. Memory on the node "
    "(IP: 192.0.2.2, ID: a25) was 2.41GB used / 23.59GB limit (0.101993)\n"
    "Ray killed 1 worker(s) based on the killing policy\nConsidered workers: [\n"
    "Selected to kill: (Actor(d50): job ID=01000000, task name=ImplicitFunc.__init__, "
    "required resources={}, pid=21058, actual memory used=0.43GB, worker ID=6ce)\n]"
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OutOfMemoryError(MEMORY_KILLED), "out of memory: 440 MB"),
        (RuntimeError(f"ray::ImplicitFunc.train() ...\n{MEMORY_KILLED}"), "out of memory: 440 MB"),
        (OutOfMemoryError("the node ran low on memory"), "out of memory"),
        (RuntimeError("CUDA out of memory"), None),  # the trial's own: its own line
        (None, None),
    ],
)
def test_a_trial_killed_for_memory_says_so_with_its_use(error, reason):
    assert memory_kill(error) == reason


# ---------------------------------------------------------------- the trial


def test_a_checkpoint_the_disk_refuses_raises_a_disk_fault_not_the_trials_error(session):  # noqa: F811
    def full_disk(metrics, checkpoint=None):
        raise OSError(PYARROW_ENOSPC)

    session.report = full_disk
    with pytest.raises(DiskFault, match="^the disk is full$"):
        train(session)


def test_a_trials_other_write_errors_stay_its_own(session):  # noqa: F811
    def missing(metrics, checkpoint=None):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    session.report = missing
    with pytest.raises(FileNotFoundError):
        train(session)


# ---------------------------------------------------------------- the driver's watch


def disk(free: int, flags: int = 0):
    """os.statvfs's answer for a disk with `free` bytes free."""
    return SimpleNamespace(f_bavail=free // 4096, f_frsize=4096, f_flag=flags)


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """A watch over tmp_path whose SIGINTs (Tune's Ctrl-C) are counted, not delivered."""
    sent = []
    monkeypatch.setattr(faults.signal, "raise_signal", sent.append)
    faults.watch(str(tmp_path))
    yield SimpleNamespace(watch=StorageWatch(), sent=sent, folder=tmp_path)
    faults.watch(None)


def test_the_watch_stops_the_search_once_before_the_disk_has_no_room_left(watched, monkeypatch):
    monkeypatch.setattr(os, "statvfs", lambda path: disk(faults.RESERVE_FLOOR_BYTES + 2**20))
    watched.watch.check(running=2)
    assert watched.sent == [] and faults.stop_cause() is None

    # Checkpoints of 1 MB: two of each running trial must fit as well.
    checkpoint = watched.folder / "checkpoint_000000"
    checkpoint.mkdir()
    (checkpoint / "checkpoint.pt").write_bytes(b"\0" * 2**20)
    watched.watch.on_checkpoint(0, [], None, SimpleNamespace(path=str(checkpoint)))
    assert watched.watch.reserve_bytes(running=2) == faults.RESERVE_FLOOR_BYTES + 4 * 2**20
    watched.watch.check(running=2)
    assert watched.sent == [signal.SIGINT]
    assert faults.stop_cause() == "the disk is nearly full (9.0 MB free, 12 MB needed to go on)"
    watched.watch.check(running=2)  # already stopping: one Ctrl-C, not one a second
    assert watched.sent == [signal.SIGINT]


def test_the_watch_looks_once_a_second(watched, monkeypatch):
    looked = []
    monkeypatch.setattr(os, "statvfs", lambda path: looked.append(path) or disk(2**40))
    running = [SimpleNamespace(status="RUNNING"), SimpleNamespace(status="PENDING")]
    for _ in range(5):
        watched.watch.on_step_end(0, running)
    assert looked == [str(watched.folder)]


def test_a_folder_gone_or_read_only_ends_the_search_at_once(watched, monkeypatch):
    monkeypatch.setattr(os, "statvfs", lambda path: disk(2**40, flags=os.ST_RDONLY))
    with pytest.raises(DiskFault, match="^the file system is read-only$"):
        watched.watch.check(running=1)
    faults.watch(str(watched.folder / "gone"))
    monkeypatch.undo()
    with pytest.raises(DiskFault, match="^the run folder disappeared$"):
        watched.watch.check(running=1)
    assert watched.sent == []  # nothing saved into a folder that is not there


def failed_trial(tmp_path: Path, *errors: str) -> SimpleNamespace:
    """A trial as Tune holds it after `errors`: written to the driver's error.txt at once,
    not yet to the run folder's (where `get_error` reads)."""
    path = tmp_path / f"error-{len(list(tmp_path.glob('error-*')))}.txt"
    path.write_text(
        "".join(f"Failure # {i + 1} (occurred at now)\n{e}\n" for i, e in enumerate(errors))
    )
    return SimpleNamespace(error_file=str(path), get_error=lambda: None)


def test_the_latest_error_of_a_trial_is_read_as_soon_as_it_failed(tmp_path):
    trial = failed_trial(tmp_path, "ValueError: first", f"OutOfMemoryError: {MEMORY_KILLED}")
    assert latest_error(trial).startswith("2 (occurred")  # the second failure, alone
    assert memory_kill(latest_error(trial)) == "out of memory: 440 MB"
    assert "first" not in latest_error(trial)
    gone = SimpleNamespace(error_file=str(tmp_path / "none.txt"), get_error=lambda: "synced")
    assert latest_error(gone) == "synced"


def test_the_watch_ends_the_search_before_a_trial_that_could_not_write_counts_as_failed(
    tmp_path,
):
    watch = StorageWatch()
    refused = failed_trial(
        tmp_path, "ray::train_lstm() ...\nsearch.faults.DiskFault: the disk is full"
    )
    with pytest.raises(DiskFault, match="^the disk is full$"):
        watch.on_trial_recover(0, [], refused)
    with pytest.raises(DiskFault):
        watch.on_trial_error(0, [], refused)
    own = failed_trial(tmp_path, "ValueError: num_layers must be positive")
    watch.on_trial_recover(0, [], own)
    watch.on_trial_error(0, [], own)


def test_the_watch_restored_with_tunes_state_looks_at_once(watched, monkeypatch):
    # Its clock came from another process, perhaps another machine.
    watched.watch.on_step_end(0, [])
    restored = pickle.loads(pickle.dumps(watched.watch))
    monkeypatch.setattr(os, "statvfs", lambda path: disk(0))
    restored.on_step_end(0, [])
    assert watched.sent == [signal.SIGINT]


# ---------------------------------------------------------------- the driver


def test_a_disk_without_room_for_a_search_is_refused_before_it_starts(tmp_path, monkeypatch):
    looked = []
    monkeypatch.setattr(os, "statvfs", lambda path: looked.append(path) or disk(2**20))
    with pytest.raises(DiskFault, match=r"1\.0 MB free, a search needs 8 MB to start"):
        driver._check_room(RunLocation.open(tmp_path / "runs" / "not-yet", "run"))
    assert looked == [tmp_path]  # the storage folder is made later, on that disk


def test_the_message_says_whether_there_is_a_search_to_resume(tmp_path):
    config = parse_args(["--storage-path", str(tmp_path), "--name", "run"])
    message, command = driver.disk_fault_message(config, "the disk is full")
    assert message == f"not started at {tmp_path / 'run'}: the disk is full. Nothing was saved"
    assert command is None
    # Only a running search's watch sees its folder go: its state is wherever that went.
    message, command = driver.disk_fault_message(config, faults.FOLDER_GONE)
    assert message.startswith("stopped at")
    assert command == driver.resume_command(config)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / driver.TUNER_STATE).write_bytes(b"")
    message, command = driver.disk_fault_message(config, "the disk is full")
    assert message.startswith(f"stopped at {tmp_path / 'run'}: the disk is full. ")
    assert message.endswith(f"resume with: {command}")
    assert command == driver.resume_command(config)
    assert command.startswith("python -m search.run --name run ") and "--resume" in command


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("searcher-state-2026-12-06_07-09-39.pkl", lambda data: data[:-20]),
        ("experiment_state-2026-12-06_07-09-39.json", lambda data: b'{"trial_data": [{"a'),
        ("search_gen_state-2026-12-06_07-09-39.json", lambda data: data[: len(data) // 2]),
    ],
)
def test_a_resume_refuses_saved_state_cut_short(tmp_path, name, damage):
    run = RunLocation.open(tmp_path, "run")
    run.create()
    whole = pickle.dumps({"trials": list(range(100))})
    for kept in driver.SAVED_STATE:
        run.write_bytes(kept.replace("*", "2026-12-06_07-00-00"), whole)  # older copies
    driver._check_saved_state(run)
    run.write_bytes(name, damage(whole))
    with pytest.raises(UserError, match=rf"its saved state {re.escape(name)} is damaged"):
        driver._check_saved_state(run)


# ---------------------------------------------------------------- end to end


@pytest.fixture
def small_disk(tmp_path):
    """A 14 MB file system mounted at tmp_path/disk (`remount(size)` grows it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=14m", "tmpfs", str(mount)], check=True)

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)

    yield SimpleNamespace(path=mount, remount=remount)
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


E2E_ARGS = ("--trials", "4", "--max-epochs", "3", "--confirm-top", "0", "--no-report")
SMALL_SPACE = ("--space", str(SMALL_NETS))  # ray_nodes.search gives it by itself


def stopped_for_the_disk(search: Search, run_dir: Path, cause: str) -> list[str]:
    """The search ended in one line naming `cause` and the folder: the resume command."""
    code, out, err = search.wait(timeout=240)
    assert code == 74, err[-3000:]
    assert "Traceback" not in err and "failed (" not in err
    ours = [line for line in err.splitlines() if line.startswith("search.run:")]
    assert len(ours) == 1, err[-3000:]
    match = re.fullmatch(
        rf"search\.run: stopped at {re.escape(str(run_dir))}: {cause}\. The state saved "
        r"before that is kept; once that is fixed, resume with: python -m search\.run (.*)",
        ours[0],
    )
    assert match, ours[0]
    return match.group(1).split()


def resumed_to_the_end(args: list[str], run_dir: Path, env: dict | None = None) -> None:
    """The resume command completes the search: every trial once, none failed."""
    search = Search(*args, env=env)
    try:
        code, out, err = search.wait(timeout=300)
    finally:
        search.kill_group()
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    assert len(table) == 4 and table["trial_id"].is_unique
    assert set(table["status"]) <= {"completed", "stopped"}, table[["trial_id", "status"]]
    assert_study_matches(run_dir, table)


@pytest.mark.e2e
def test_a_disk_that_fills_stops_the_search_and_the_resume_completes_it(small_disk):
    run_dir = small_disk.path / "filling"
    search = Search(
        "--storage-path", str(small_disk.path), "--name", "filling", *SMALL_SPACE, *E2E_ARGS
    )
    try:
        command = stopped_for_the_disk(
            search, run_dir, r"the disk is nearly full \([0-9.]+ MB free, \d+ MB needed to go on\)"
        )
    finally:
        search.kill_group()
    small_disk.remount("size=200m")
    resumed_to_the_end(command, run_dir)


@pytest.mark.e2e
def test_a_run_folder_that_disappears_stops_the_search_and_the_resume_completes_it(tmp_path):
    """A mount that drops mid-search (here a bind mount, whose files stay behind it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    kept, mount = tmp_path / "kept", tmp_path / "mount"
    kept.mkdir()
    mount.mkdir()

    def bind() -> None:
        subprocess.run(["mount", "--bind", str(kept), str(mount)], check=True)

    bind()
    run_dir = mount / "dropped"
    search = Search("--storage-path", str(mount), "--name", "dropped", *SMALL_SPACE, *E2E_ARGS)
    try:
        wait_for(lambda: len(epochs_reported(run_dir)) >= 1, what="a trial to report")
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
        command = stopped_for_the_disk(search, run_dir, "the run folder disappeared")
    finally:
        search.kill_group()
    shutil.rmtree(mount)  # what was written after the mount dropped: not the run's
    mount.mkdir()
    bind()
    try:
        resumed_to_the_end(command, run_dir)
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.mark.e2e
def test_a_trial_killed_for_memory_is_recorded_with_that_reason(tmp_path):
    # Ray's memory monitor, told that 1% of the node's memory is too much, kills each
    # trial's worker as it starts training.
    monitor = {"RAY_memory_usage_threshold": "0.01", "RAY_memory_monitor_refresh_ms": "100"}
    args = ["--storage-path", str(tmp_path), "--name", "oom", "--trials", "1"]
    args += ["--max-epochs", "1", "--max-failures", "1", "--asha-time", "epochs"]
    search = Search(*args, "--confirm-top", "0", "--no-report", env=monitor)
    try:
        code, out, err = search.wait(timeout=240)
    finally:
        search.kill_group()
    assert code == 0, err[-3000:]
    assert re.search(r"failed \(out of memory: \d+ MB\); retrying", err), err[-3000:]
    assert re.search(r"failed for good: out of memory: \d+ MB", err), err[-3000:]
    table = pd.read_csv(tmp_path / "oom" / TRIALS_CSV, keep_default_na=False)
    assert list(table["status"]) == ["failed"]
    assert re.fullmatch(r"out of memory: \d+ MB", table["error"][0]), table["error"][0]


# ---------------------------------------------------------------- a lost head


@pytest.mark.e2e
def test_a_search_that_loses_its_cluster_says_so_and_resumes_on_a_new_one(tmp_path):
    env = token_env()
    heads: list[Node] = []

    def start_head() -> str:
        port = free_port()
        heads.append(Node.head(port, env, tmp_path / f"head-{port}.log", cpus=2))
        wait_for_nodes(f"127.0.0.1:{port}", env, 1, tmp_path)
        return f"127.0.0.1:{port}"

    run_dir = tmp_path / "runs" / "lost"
    try:
        first = start_head()
        proc = ray_nodes.search(first, env, tmp_path, "lost", *E2E_ARGS)
        wait_for(lambda: len(epochs_reported(run_dir)) >= 1, what="a trial to report")
        heads[0].kill()
        code, out, err = ray_nodes.finish(proc, timeout=120)
        assert code == 69, err[-3000:]
        assert "Traceback" not in err and "failed (" not in err
        ours = [line for line in err.splitlines() if line.startswith("search.run:")]
        assert len(ours) == 1, err[-3000:]
        match = re.fullmatch(
            r"search\.run: lost the Ray cluster: its head at \S+ stopped answering\. The "
            r"state saved before that is kept; once the cluster is back, resume with: "
            r"python -m search\.run (.*--address \S+ --resume) \(on another cluster, with "
            r"its --address\)",
            ours[0],
        )
        assert match, ours[0]
        resume = match.group(1).split()
        resume[resume.index("--address") + 1] = start_head()  # another cluster
        resumed_to_the_end(resume, run_dir, env)
    finally:
        for head in heads:
            head.kill()
