"""The search as a Ray Job: submitted to a head with token authentication and its job
server on loopback, as docs/clusters.md shows; one job runs to the end, another is stopped
with `ray job stop` and a third resumes it to completion.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from search.run_folder import TRIALS_CSV
from search.run_record import RUN_JSON
from tests.conftest import REPO, SMALL_NETS
from tests.ray_nodes import RAY, Node, command_lines, free_port, token_env, wait_for_nodes

pytestmark = pytest.mark.e2e

# What docs/clusters.md passes: time for the driver to save the search after SIGTERM before
# the job server's SIGKILL (its default is 3 s).
RUNTIME_ENV = json.dumps({"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "60"}})


class JobHead:
    def __init__(self, tmp: Path):
        self.port, self.dashboard_port = free_port(), free_port()
        self.env = token_env()
        self.tmp = tmp
        self.head = Node.head(
            self.port,
            self.env,
            tmp / "head.log",
            "--include-dashboard=true",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.dashboard_port),
            # The job server hands a job to the node's agent over HTTP: a free port, not
            # the default 52365 that another Ray on this machine may hold.
            "--dashboard-agent-listen-port",
            str(free_port()),
            cpus=2,
        )
        self.jobs_address = f"http://127.0.0.1:{self.dashboard_port}"

    def __enter__(self) -> JobHead:
        try:
            wait_for_nodes(f"127.0.0.1:{self.port}", self.env, 1, self.tmp)
        except BaseException:
            self.head.kill()  # __exit__ runs only once __enter__ has returned
            raise
        return self

    def __exit__(self, *exc) -> None:
        # A job's entrypoint runs in a session of its own, outside the head's process
        # group: end those this test submitted (their command names its folder) first.
        marker = str(self.tmp).encode()
        for pid in [pid for pid, args in command_lines() if any(marker in a for a in args)]:
            with contextlib.suppress(ProcessLookupError):
                group = os.getpgid(pid)
                if group != os.getpgrp():
                    os.killpg(group, signal.SIGKILL)
        self.head.kill()

    def job(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [RAY, "job", *args, "--address", self.jobs_address],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def submit(self, job_id: str, flags: str, wait: bool) -> subprocess.CompletedProcess:
        # The entrypoint docs/clusters.md gives: the project's folder and its Python, on the head.
        entrypoint = f"cd {shlex.quote(str(REPO))} && {sys.executable} -m search.run {flags}"
        extra = [] if wait else ["--no-wait"]
        return self.job(
            "submit", "--submission-id", job_id, "--runtime-env-json", RUNTIME_ENV, *extra,
            "--", "bash", "-c", entrypoint,
        )  # fmt: skip

    def status(self, job_id: str) -> str:
        """What `ray job status` says, e.g. "job 'x' succeeded" (lower case)."""
        return self.job("status", job_id).stdout.lower()

    def logs(self, job_id: str) -> str:
        return self.job("logs", job_id).stdout


def test_a_search_as_a_ray_job_finishes_and_a_stopped_one_resumes(tmp_path):
    runs = tmp_path / "runs"
    common = f"--storage-path {runs} --space {SMALL_NETS} --confirm-top 0 --no-report"
    with JobHead(tmp_path) as head:
        done = head.submit(
            "whole", f"--name whole --trials 2 --max-epochs 2 --grace-epochs 2 {common}", True
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "succeeded" in head.status("whole")
        table = pd.read_csv(runs / "whole" / TRIALS_CSV)
        assert len(table) == 2 and set(table["status"]) == {"completed"}
        assert (runs / "whole" / "best" / "config.json").exists()

        flags = f"--name stopped --trials 6 --max-epochs 3 --grace-epochs 3 {common}"
        started = head.submit("stopped", flags, wait=False)
        assert started.returncode == 0, started.stderr
        _wait_for_a_finished_epoch(runs / "stopped", head)
        stop = head.job("stop", "stopped")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "stopped" in head.status("stopped").split("job 'stopped'", 1)[1]
        # SIGTERM, handled as Ctrl-C: the driver saved the search and said how to go on.
        log = head.logs("stopped")
        resume = next((line for line in log.splitlines() if "Resume with:" in line), None)
        assert resume and "Traceback" not in log, log[-3000:]
        command = resume.split("Resume with:", 1)[1].strip()
        assert command.startswith("python -m search.run ") and command.endswith("--resume")
        assert json.loads((runs / "stopped" / RUN_JSON).read_text())["sessions"] == 1

        resumed = head.submit("resumed", command.removeprefix("python -m search.run "), True)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + head.logs("resumed")[-3000:]
        assert "succeeded" in head.status("resumed"), head.logs("resumed")[-3000:]
    table = pd.read_csv(runs / "stopped" / TRIALS_CSV)
    assert len(table) == 6 and set(table["status"]) == {"completed"}
    assert json.loads((runs / "stopped" / RUN_JSON).read_text())["sessions"] == 2


def _wait_for_a_finished_epoch(run: Path, head: JobHead, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not any(p.stat().st_size for p in run.glob("trial_*/result.json")):
        assert time.monotonic() < deadline, head.logs("stopped")[-3000:]
        time.sleep(0.5)
