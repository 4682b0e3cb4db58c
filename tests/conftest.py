"""Shared fixtures: small MNIST-format IDX folders written by the tests themselves, and
one tiny real search run shared by the end-to-end and report tests."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "datasets" / "mnist"
RECORDED_CLUSTER = Path("/tmp/ray/ray_current_cluster")


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


@pytest.fixture
def idx_folder(tmp_path) -> Path:
    return write_idx_folder(tmp_path / "digits")


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
    saved = RECORDED_CLUSTER.read_text() if RECORDED_CLUSTER.exists() else None
    RECORDED_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
    RECORDED_CLUSTER.write_text("127.0.0.1:1")  # nothing listens on port 1
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "search.run",
                "--dataset",
                "mnist",
                "--data-dir",
                str(data_dir),
                "--trials",
                "4",
                "--max-epochs",
                "2",
                "--storage-path",
                str(tmp / "runs"),
                "--name",
                "tiny",
                "--seed",
                "1",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        if saved is None:
            RECORDED_CLUSTER.unlink()
        else:
            RECORDED_CLUSTER.write_text(saved)
    return result, tmp / "runs" / "tiny"
