"""Shared fixtures: small MNIST-format IDX folders written by the tests themselves, a
run folder built by hand (no Ray) for the analysis tests, and one tiny real search run
shared by the end-to-end tests.

Every Ray the tests start (in-process or through the CLI) keeps its files in a temporary
folder of this test session (RAY_TMPDIR), so the tests never read or overwrite the
machine's own record of its last Ray cluster (`/tmp/ray/ray_current_cluster`).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
# The end-to-end searches' --space: networks that cost about the tutorial's (the file says why).
SMALL_NETS = REPO / "tests" / "small_nets.toml"
# The full MNIST files of the developers' machines and CI (users' machines lack them).
SHARED_MNIST = Path(
    os.environ.get("LSTM_SEARCH_MNIST_DIR", REPO.parent / "shared" / "datasets" / "mnist")
)
# CI sets this: a test that skips there has lost what it checks (a server, a browser, the
# full MNIST files went missing), so any skip fails the run instead of passing quietly.
NO_SKIPS = os.environ.get("LSTM_SEARCH_NO_SKIPS") == "1"
_skipped: list[str] = []


def pytest_configure(config) -> None:
    # Short, under /tmp: Ray's Unix socket paths inside it must stay under 107 bytes.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray-tests-", dir="/tmp")


def pytest_collection_modifyitems(config, items) -> None:
    # Under mutmut, a mutant's tests stop at their first failure (-x). Running the
    # quickest first (by the durations mutmut recorded in its clean run) lets a killed
    # mutant cost seconds instead of the slowest tests' minutes.
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    stats = Path("mutmut-stats.json")  # mutmut runs the tests in its mutants/ folder
    if stats.is_file():
        seconds = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: seconds.get(item.nodeid, 0.0))


def pytest_runtest_logreport(report) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    if NO_SKIPS and _skipped:
        print(f"\nLSTM_SEARCH_NO_SKIPS=1, but {len(_skipped)} test(s) skipped: {_skipped}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config) -> None:
    shutil.rmtree(os.environ.pop("RAY_TMPDIR", ""), ignore_errors=True)


def recorded_cluster() -> Path:
    """Where `ray start --head` records its address for this test session's Ray."""
    return Path(os.environ["RAY_TMPDIR"]) / "ray" / "ray_current_cluster"


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000 08 ndim, big-endian dims)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(
    folder: Path, n_train: int = 200, n_test: int = 50, gz: bool = True, seed: int = 0
) -> Path:
    """Four IDX files with 10 balanced classes; each class lights its own block of pixels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, y in enumerate(labels):
            images[i, 2 * y : 2 * y + 3, 4:24] = 255
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


def tiny_search_args(data_dir: Path, runs: Path, name: str, *extra: str) -> list[str]:
    """`python -m search.run`'s flags for a search of the IDX folder `data_dir` (one
    split: no cross-validation) of small networks into `runs/name`; `extra` adds its size
    and the rest."""
    return [
        "--dataset", "mnist", "--data-dir", str(data_dir), "--cv-folds", "0",
        "--space", str(SMALL_NETS), "--storage-path", str(runs), "--name", name, *extra,
    ]  # fmt: skip


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> dict[str, str]:
    """W&B offline and kept in this test's folder (its own files, its caches, no
    credentials of this machine); the environment a search gets. Not WANDB_SILENT: the
    tracker is quiet by itself, which the tests check."""
    wandb = pytest.importorskip("wandb")  # the `wandb` extra
    home = tmp_path / "home"
    environment = {
        "WANDB_MODE": "offline",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_DIR": str(home / "default"),  # where runs without a local run folder go
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_DATA_DIR": str(home / "data"),
        "HOME": str(home),
        "NETRC": str(home / "netrc"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT", "WANDB_SILENT"):
        monkeypatch.delenv(name, raising=False)
    # No proxy between a search and a tracking server on loopback.
    for name in [k for k in os.environ if k.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    # wandb reads the environment once per process: start it afresh, and end it after.
    wandb.teardown()
    yield environment
    wandb.teardown()


@pytest.fixture
def idx_folder(tmp_path) -> Path:
    return write_idx_folder(tmp_path / "digits")


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory) -> Path:
    """A finished run folder built by hand (see tests/fake_run.py); do not modify it."""
    from tests.fake_run import build_run

    return build_run(tmp_path_factory.mktemp("fake"), "fake", seed=1)


@pytest.fixture(scope="session")
def fake_pareto_run(tmp_path_factory) -> Path:
    """As `fake_run`, from a search over accuracy and model size."""
    from tests.fake_run import build_run

    return build_run(tmp_path_factory.mktemp("fake"), "pareto", seed=1, objective="accuracy+size")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Four trials of at most two epochs on 600 synthetic digits, run through the CLI.

    Returns (CompletedProcess, run folder). Session-scoped: the search tests check the
    run itself, the report tests build reports from it; tests that damage a run work on
    a copy. A dead cluster is recorded the way `ray start --head` records one, to check
    that a run without --address starts its own Ray instead of trying to join it.
    """
    tmp = tmp_path_factory.mktemp("e2e")
    data_dir = write_idx_folder(tmp / "digits", n_train=600, n_test=100)
    recorded = recorded_cluster()
    recorded.parent.mkdir(parents=True, exist_ok=True)
    recorded.write_text("127.0.0.1:1")  # nothing listens on port 1
    try:
        # 600 digits would get cross-validation; tiny_search_args gives one split.
        flags = tiny_search_args(data_dir, tmp / "runs", "tiny", "--trials", "4")
        result = subprocess.run(
            [sys.executable, "-m", "search.run", *flags, "--max-epochs", "2", "--seed", "1"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        recorded.unlink(missing_ok=True)
    return result, tmp / "runs" / "tiny"


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of this test session (see tests/postgres.py). CI sets
    LSTM_SEARCH_REQUIRE_POSTGRES=1, so that a missing server fails instead of skipping."""
    from tests.postgres import PostgresServer, binaries

    bindir = binaries()
    if bindir is None:
        if os.environ.get("LSTM_SEARCH_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is not installed (apt-get install -y postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    server = PostgresServer(bindir)
    yield server
    server.stop()
