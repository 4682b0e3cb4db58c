"""A real MLflow tracking server, for the tests and the tracking benchmark (18):
`mlflow server` on a SQLite file and an artifact folder in a temporary folder, listening
on a loopback port, started in a process group of its own and stopped by it (the server
starts workers of its own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` on its own store; or, given `ui_in`, `mlflow ui` started in that
    folder with MLflow's defaults, as a user types it (the README's second command)."""

    def __init__(self, ui_in: Path | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mlflow-tests-"))
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "server.log"
        address = ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        if ui_in is None:
            store = f"sqlite:///{self.folder / 'mlflow.db'}"
            artifacts = str(self.folder / "artifacts")
            command = ["server", "--backend-store-uri", store,
                       "--artifacts-destination", artifacts, *address]  # fmt: skip
        else:
            command = ["ui", *address]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", *command],
                cwd=ui_in,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its background job runner (for GenAI jobs) is a handful of processes
                # that a test machine's cores are better without.
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                start_new_session=True,
            )  # fmt: skip
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"mlflow server did not start:\n{tail}")
            time.sleep(0.3)

    def cpu_seconds(self) -> float:
        """The CPU time the server's processes have used so far (user and system)."""
        import psutil

        main = psutil.Process(self.process.pid)
        total = 0.0
        for process in [main, *main.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def stop(self, keep_files: bool = False) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        if not keep_files:
            shutil.rmtree(self.folder, ignore_errors=True)
