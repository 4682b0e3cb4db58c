"""A real two-node Ray cluster on this machine: a search spreads over both nodes, and
survives losing the worker node.

Head and worker are separate `ray start --block` processes (one CPU each, loopback,
token authentication on for head, worker and driver alike, with a token made for the
test). Each runs in a process group of its own and is killed by pid at the end, even
when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from search.run_folder import TRIALS_CSV
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ray start --block` process group; killing the group kills the whole node."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def node_id(self) -> str:
        """The node id, read from this group's raylet command line."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.getpgid(int(pid)) != self.proc.pid:
                    continue
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                for arg in args:
                    if arg.startswith(b"--node_id="):
                        return arg.split(b"=", 1)[1].decode()
        raise AssertionError("no raylet found for this node")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()


class Cluster:
    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # One consistent setting for every process: token auth on, one shared token.
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }
        self.nodes: list[Node] = []
        self.tmp = tmp

    def start(self) -> None:
        self.nodes.append(
            Node(
                [
                    "--head",
                    "--node-ip-address",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--include-dashboard=false",
                ],
                self.env,
                self.tmp / "head.log",
            )
        )
        self._wait_for_nodes(1)
        self.nodes.append(
            Node(
                ["--address", self.address, "--node-ip-address", "127.0.0.1"],
                self.env,
                self.tmp / "worker.log",
            )
        )
        self._wait_for_nodes(2)

    def _wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = subprocess.run(
                [RAY, "status", "--address", self.address],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            active = status.stdout.split("Pending:")[0]
            if status.returncode == 0 and active.count(" node_") >= count:
                return
            time.sleep(1)
        logs = "\n".join(p.read_text()[-2000:] for p in self.tmp.glob("*.log"))
        raise AssertionError(f"cluster did not reach {count} nodes:\n{logs}")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def search(
    cluster: Cluster, tmp: Path, name: str, *args: str, env: dict | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.run",
            "--address",
            cluster.address,
            "--storage-path",
            str(tmp / "runs"),
            "--name",
            name,
            *args,
        ],
        cwd=REPO,
        env=env or cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err


def reports(run_dir: Path) -> dict[str, list[dict]]:
    found = {}
    for path in run_dir.glob("trial_*/result.json"):
        lines = path.read_text().splitlines()
        found[path.parent.name.removeprefix("trial_")] = [json.loads(x) for x in lines if x]
    return found


def test_local_storage_on_two_nodes_needs_shared_storage(cluster, tmp_path):
    code, out, err = finish(search(cluster, tmp_path, "refused", "--trials", "2"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "--shared-storage" in err
    assert not (tmp_path / "runs" / "refused").exists()


def test_wrong_token_is_one_clear_line(cluster, tmp_path):
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    proc = search(cluster, tmp_path, "denied", "--trials", "2", env=wrong)
    code, out, err = finish(proc)
    assert code == 2, err[-3000:]
    assert err.strip().count("\n") == 0 and "authentication token" in err, err


def test_trials_spread_over_both_nodes(cluster, tmp_path):
    proc = search(
        cluster, tmp_path, "spread", "--shared-storage", "--trials", "6", "--max-epochs", "2"
    )
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "spread" / TRIALS_CSV)
    assert len(table) == 6 and set(table["status"]) <= {"completed", "stopped"}
    assert set(table["node"]) == {node.node_id() for node in cluster.nodes}


def test_search_survives_losing_the_worker_node(cluster, tmp_path):
    run_dir = tmp_path / "runs" / "loss"
    worker_id = cluster.nodes[1].node_id()
    proc = search(
        cluster,
        tmp_path,
        "loss",
        "--shared-storage",
        "--confirm-top",  # confirmation is tested elsewhere; this test is about the node
        "0",
        "--trials",
        "4",
        "--max-epochs",
        "5",
        "--grace-epochs",
        "5",
        "--max-failures",
        "3",
    )
    # Kill the worker node once one of its trials has checkpointed two epochs.
    deadline = time.monotonic() + 300
    while not any(
        r and r[-1]["node"] == worker_id and r[-1]["epoch"] >= 2 for r in reports(run_dir).values()
    ):
        assert time.monotonic() < deadline and proc.poll() is None, "no trial on the worker"
        time.sleep(0.2)
    cluster.nodes[1].kill()

    code, out, err = finish(proc, timeout=600)
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV)
    assert len(table) == 4 and (table["status"] == "completed").all()  # every trial counted

    retried, redone = 0, 0
    for trial_reports in reports(run_dir).values():
        epochs = [r["epoch"] for r in trial_reports]
        nodes = [r["node"] for r in trial_reports]
        if worker_id in nodes and nodes[-1] != worker_id:  # moved off the lost node
            retried += 1
        redone += len(epochs) - len(set(epochs))
        # A retried trial continues from its checkpoint: it never starts over at epoch 1.
        assert epochs.count(1) == 1
        assert max(epochs) == 5
    assert retried >= 1
    print(f"\nnode loss: {retried} trial(s) retried on the head node, {redone} epoch(s) redone")
