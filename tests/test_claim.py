"""One owner per run folder: the claim, its refusals, stale claims and the heartbeat."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from search import claim as c
from search.config import parse_args
from search.errors import UserError
from search.storage import RunLocation
from tests.conftest import REPO
from tests.test_storage import s3  # noqa: F401 (a fixture)


@pytest.fixture
def run(tmp_path) -> RunLocation:
    return RunLocation.open(tmp_path / "runs", "same")


def write_claim(run: RunLocation, age: float = 0.0, **owner) -> None:
    """A claim as another search left it, its last heartbeat `age` seconds ago."""
    run.create()
    fields = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": None}
    fields |= {"started": time.time() - age, "token": "theirs", **owner}
    path = os.path.join(run.path, c.CLAIM_FILE)
    with open(path, "w") as out:
        json.dump(fields, out)
    os.utime(path, (time.time() - age, time.time() - age))


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def test_a_claimed_folder_is_refused_to_a_second_search_naming_the_first(run):
    with c.claim(run):
        with pytest.raises(UserError) as refused:
            c.claim(run)
        message = str(refused.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in message
        assert "in use by another search" in message and "\n" not in message
    # Released at the end: the folder is free again and holds no claim.
    assert not run.exists(c.CLAIM_FILE)
    c.claim(run).release()


def test_a_claim_left_by_a_killed_search_on_this_host_is_taken_over(run):
    write_claim(run, pid=dead_pid())
    with c.claim(run) as mine:
        assert json.loads(run.read_bytes(c.CLAIM_FILE))["token"] == mine.owner.token


def test_a_claim_of_a_search_that_still_runs_on_this_host_is_kept(run):
    # The start time a process records for itself is the one another process reads.
    code = (
        "import sys; from search.claim import Owner; "
        "print(Owner.this_process().encoded().decode(), flush=True); sys.stdin.read()"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        recorded = json.loads(owner.stdout.readline())
        assert recorded["pid"] == owner.pid and recorded["process_start"] is not None
        write_claim(run, pid=owner.pid, process_start=recorded["process_start"])
        with pytest.raises(UserError, match=f"pid {owner.pid} on"):
            c.claim(run)
    finally:
        owner.stdin.close()
        owner.wait(timeout=60)


def test_a_reused_pid_does_not_keep_a_claim_alive(run):
    # Our own pid, but a process start time that is not ours: another process had it.
    write_claim(run, process_start="1")
    c.claim(run).release()


@pytest.mark.parametrize(("age", "taken"), [(10.0, False), (c.STALE_SECONDS + 60, True)])
def test_another_hosts_claim_is_stale_once_its_heartbeat_stops(run, age, taken):
    write_claim(run, age=age, host="elsewhere", pid=1)
    if taken:
        c.claim(run).release()
    else:
        with pytest.raises(UserError, match="pid 1 on elsewhere"):
            c.claim(run)


def test_releasing_leaves_a_claim_that_is_not_ours(run):
    mine = c.claim(run)
    write_claim(run, host="elsewhere", pid=1)  # taken over while we were thought gone
    mine.release()
    assert json.loads(run.read_bytes(c.CLAIM_FILE))["token"] == "theirs"


def test_the_owner_keeps_its_claim_fresh(run, monkeypatch):
    monkeypatch.setattr(c, "HEARTBEAT_SECONDS", 0.05)
    with c.claim(run):
        path = os.path.join(run.path, c.CLAIM_FILE)
        os.utime(path, (0, 0))  # as if the last beat were long ago
        deadline = time.monotonic() + 10
        while os.stat(path).st_mtime < time.time() - 60:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)


def _race(storage: str, start, wins) -> None:
    run = RunLocation.open(storage, "same")
    start.wait()
    try:
        owner = c.claim(run)
    except UserError:
        wins.put(False)
        return
    wins.put(True)
    time.sleep(1)  # hold it while the others try
    owner.release()


def test_of_searches_claiming_one_folder_at_once_exactly_one_wins(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, wins = context.Barrier(4), context.Queue()
    racers = [context.Process(target=_race, args=(str(tmp_path), start, wins)) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(wins.get(timeout=5) for _ in racers) == [False, False, False, True]


@pytest.mark.e2e
def test_a_claim_in_an_object_store(s3):  # noqa: F811
    options, _ = s3
    run = RunLocation.open(f"s3://runs?{options}", "same")
    with c.claim(run) as mine:
        assert json.loads(run.read_bytes(c.CLAIM_FILE))["token"] == mine.owner.token
        with pytest.raises(UserError, match="in use by another search"):
            c.claim(run)
    assert not run.exists(c.CLAIM_FILE)


def test_default_run_names_differ_even_within_one_second():
    # Four random hex digits: two names of one second collide once in 65,536. Ten names
    # (45 pairs) collide about once in 1,500 runs; fifty (1,225 pairs) did once in 50.
    names = {parse_args([]).name for _ in range(10)}
    assert len(names) == 10
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", name) for name in names)


@pytest.mark.e2e
def test_two_searches_started_at_once_on_one_folder_exactly_one_runs(tmp_path):
    from tests.test_resume import Search, base_args

    args = base_args(tmp_path, "same", "--trials", "2", "--max-epochs", "1", "--no-report")
    pair = [Search(*args, "--confirm-top", "0") for _ in range(2)]
    try:
        (code_a, _, err_a), (code_b, _, err_b) = (s.wait(timeout=400) for s in pair)
    finally:
        for search in pair:
            search.kill_group()
    assert sorted([code_a, code_b]) == [0, 2], (err_a[-2000:], err_b[-2000:])
    refused = err_a if code_a == 2 else err_b
    assert refused.count("\n") == 1 and re.search(
        r"run folder .*same (is in use by another search \(pid \d+ on |already exists)", refused
    )
    # The folder holds one search's work: its two trials, one set of Tune's state.
    run_dir = tmp_path / "runs" / "same"
    assert len(list(run_dir.glob("trial_*"))) == 2
    assert len(list(run_dir.glob("tuner.pkl"))) == 1 and not (run_dir / c.CLAIM_FILE).exists()


@pytest.mark.e2e
def test_a_resume_while_the_search_still_runs_is_refused(tmp_path):
    from tests.test_resume import Search, base_args, epochs_reported, run_search, wait_for

    args = base_args(tmp_path, "busy", "--trials", "8", "--max-epochs", "3", "--no-report")
    running = Search(*args)
    try:
        wait_for(lambda: len(epochs_reported(tmp_path / "runs" / "busy")) >= 1, what="a trial")
        code, _, err = run_search(*args, "--resume")
        still_running = running.proc.poll() is None
    finally:
        running.kill_group()
    assert still_running, "the search ended before the check: give it more trials"
    assert code == 2 and err.count("\n") == 1, err[-3000:]
    assert f"in use by another search (pid {running.proc.pid} on {socket.gethostname()}" in err
