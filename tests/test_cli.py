"""Bad input ends in one line on stderr and exit status 2, before any Ray start."""

import socket
import subprocess
import sys

import pytest

from search.config import SearchConfig, parse_args
from tests.conftest import REPO, write_idx_folder


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_defaults_match_the_documented_ones():
    config = parse_args([])
    assert config.trials == 50
    assert config.dataset == "mnist-5k"
    assert config.storage_path == "./runs"
    assert config.cpus_per_trial == 1 and config.gpus_per_trial == 0
    assert config.address is None and config.max_concurrent is None


def test_help_explains_every_flag():
    result = run_cli("--help")
    assert result.returncode == 0
    for field in SearchConfig.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bad_inputs(tmp_path):
    corrupt = write_idx_folder(tmp_path / "corrupt")
    images = corrupt / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:500])
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    return {
        "zero trials": ["--trials", "0"],
        "negative trials": ["--trials", "-3"],
        "NaN cpus": ["--cpus-per-trial", "nan"],
        "negative gpus": ["--gpus-per-trial", "-1"],
        "unknown flag": ["--epochs", "3"],
        "unknown dataset": ["--dataset", "cifar10"],
        "missing data dir": ["--dataset", "mnist", "--data-dir", str(tmp_path / "none")],
        "corrupt data": ["--dataset", "mnist", "--data-dir", str(corrupt)],
        "run name with slash": ["--name", "a/b"],
        "existing run": ["--name", "taken", "--storage-path", str(tmp_path / "runs")],
        "grace above max": ["--max-epochs", "2", "--grace-epochs", "3"],
        "no cluster at address": [
            "--address",
            f"127.0.0.1:{_free_port()}",
            "--storage-path",
            str(tmp_path / "runs"),
        ],
    }


def test_bad_inputs_give_one_line_and_status_2(bad_inputs, tmp_path):
    taken = tmp_path / "runs" / "taken"
    for case, args in bad_inputs.items():
        result = run_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (case, result.stderr)
        assert len(lines) == 1, (case, result.stderr)
        assert "error" in lines[0] and "Traceback" not in result.stderr, case
    assert taken.is_dir() and not any(taken.iterdir())  # the existing run is untouched
