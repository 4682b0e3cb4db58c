"""Run folders in an object store: S3 served on loopback by moto, reached through pyarrow."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
import torch

from search.run_folder import TRIALS_CSV
from tests.conftest import REPO, write_idx_folder

pytestmark = pytest.mark.e2e
MOTO = str(Path(sys.executable).parent / "moto_server")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3(monkeypatch):
    """An S3 endpoint on 127.0.0.1 with one bucket; yields the storage URI's options."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [MOTO, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        options = f"endpoint_override=127.0.0.1:{port}&scheme=http"
        fs, _ = pafs.FileSystem.from_uri(f"s3://runs?{options}&allow_bucket_creation=true")
        deadline = time.monotonic() + 30
        while True:
            try:
                fs.create_dir("runs")
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.3)
        yield options, fs
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_search_writes_its_run_folder_to_s3(s3, tmp_path):
    options, fs = s3
    data_dir = write_idx_folder(tmp_path / "digits", n_train=300, n_test=50)
    storage = f"s3://runs/lstm?{options}"
    args = [
        "--dataset",
        "mnist",
        "--data-dir",
        str(data_dir),
        "--trials",
        "2",
        "--max-epochs",
        "1",
        "--storage-path",
        storage,
        "--name",
        "first",
    ]
    result = cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Run folder: s3://runs/lstm/first" in result.stdout

    with fs.open_input_stream("runs/lstm/first/" + TRIALS_CSV) as f:
        table = pd.read_csv(io.BytesIO(f.read()))
    assert len(table) == 2 and table["checkpoint"].notna().all()
    with fs.open_input_stream(f"runs/lstm/first/{table['checkpoint'][0]}") as f:
        state = torch.load(io.BytesIO(f.read()), weights_only=True)
    assert state["epoch"] == 1
    assert fs.get_file_info("runs/lstm/first/run.json").type == pafs.FileType.File

    again = cli(*args)  # the same name again: refused, nothing touched
    assert again.returncode == 2 and "already exists" in again.stderr
    assert again.stderr.strip().count("\n") == 0


def test_missing_bucket_is_one_clear_line(s3):
    options, _ = s3
    result = cli("--trials", "2", "--storage-path", f"s3://no-such-bucket/x?{options}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().count("\n") == 0 and "no-such-bucket" in result.stderr
