"""Real Ray nodes for the tests: `ray start --block` processes on loopback, each in a
process group of its own, killed by that group at the end, even when a test fails.

Every process the node starts (raylet, GCS, dashboard, an autoscaler and the nodes a
fake autoscaler launches) stays in the group, so one `killpg` ends exactly what the test
started and nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from tests.conftest import REPO, SMALL_NETS
from tests.postgres import free_port

RAY = str(Path(sys.executable).parent / "ray")


def token_env(**extra: str) -> dict[str, str]:
    """One consistent setting for every process: token auth on, one fresh token."""
    return {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        **extra,
    }


class Node:
    """One `ray start --block` process group; killing the group kills the whole node."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cpus: int = 1):
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus", str(cpus), "--disable-usage-stats", *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @classmethod
    def head(cls, port: int, env: dict[str, str], log: Path, *args: str, cpus: int = 1) -> Node:
        return cls(
            ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), *args],
            env,
            log,
            cpus,
        )

    def node_id(self) -> str:
        """The node id, read from this group's raylet command line."""
        for pid, args in command_lines():
            with contextlib.suppress(OSError):
                if os.getpgid(pid) != self.proc.pid:
                    continue
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
    """A head and worker nodes on loopback, one CPU each, with token authentication."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = token_env()
        self.nodes: list[Node] = []
        self.tmp = tmp

    def start(self, workers: int = 1) -> None:
        self.nodes.append(
            Node.head(self.port, self.env, self.tmp / "head.log", "--include-dashboard=false")
        )
        wait_for_nodes(self.address, self.env, 1, self.tmp)
        for _ in range(workers):
            self.add_worker()

    def add_worker(self) -> None:
        """One more worker node (a new one, in the place of a lost one)."""
        args = ["--address", self.address, "--node-ip-address", "127.0.0.1"]
        self.nodes.append(Node(args, self.env, self.tmp / f"worker-{len(self.nodes)}.log"))
        alive = sum(node.proc.poll() is None for node in self.nodes)
        wait_for_nodes(self.address, self.env, alive, self.tmp)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, arguments) of every process on this machine whose command line is readable."""
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.info["cmdline"]:  # None where it is not ours to read
            yield process.info["pid"], [arg.encode() for arg in process.info["cmdline"]]


def wait_for_nodes(address: str, env: dict, count: int, logs: Path, timeout: float = 90) -> None:
    """Until `ray status` lists `count` active nodes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run(
            [RAY, "status", "--address", address],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # "Active:" lists " 1 node_<id>" per node, or " 2 <node type>" under an autoscaler.
        active = status.stdout.split("Active:")[-1].split("Pending:")[0]
        up = sum(int(n) for n in re.findall(r"^\s+(\d+) \S+$", active, re.M))
        if status.returncode == 0 and up >= count:
            return
        time.sleep(1)
    tails = "\n".join(p.read_text()[-2000:] for p in logs.glob("*.log"))
    raise AssertionError(f"cluster did not reach {count} nodes:\n{tails}")


def search(address: str | None, env: dict, tmp: Path, name: str, *args: str) -> subprocess.Popen:
    """`python -m search.run` of small networks (`SMALL_NETS`) against the cluster at
    `address` (None: no --address, so the environment decides), in its own process group."""
    joins = ["--address", address] if address is not None else []
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.run",
            *joins,
            "--storage-path",
            str(tmp / "runs"),
            "--name",
            name,
            "--space",
            str(SMALL_NETS),
            *args,
        ],
        cwd=REPO,
        env=env,
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


__all__ = [
    "RAY",
    "Node",
    "command_lines",
    "finish",
    "free_port",
    "search",
    "token_env",
    "wait_for_nodes",
]
