"""CI runs with LSTM_SEARCH_NO_SKIPS=1: a test that skips there fails the run."""

import os
import subprocess
import sys

from tests.conftest import REPO


def run_pytest_on(tmp_path, body: str, **env: str) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_sample.py"
    test_file.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", str(test_file)],
        cwd=REPO,
        env={**os.environ, "LSTM_SEARCH_NO_SKIPS": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


SKIPS = "import pytest\n\ndef test_needs_a_server():\n    pytest.skip('no server')\n"


def test_a_skip_fails_the_run_where_none_is_expected(tmp_path):
    result = run_pytest_on(tmp_path, SKIPS, LSTM_SEARCH_NO_SKIPS="1")
    assert result.returncode == 1, result.stdout
    assert "1 test(s) skipped" in result.stdout and "test_needs_a_server" in result.stdout


def test_a_skip_passes_elsewhere(tmp_path):
    assert run_pytest_on(tmp_path, SKIPS).returncode == 0


def test_passing_tests_pass_where_skips_are_not_expected(tmp_path):
    body = "def test_fine():\n    assert 1 + 1 == 2\n"
    assert run_pytest_on(tmp_path, body, LSTM_SEARCH_NO_SKIPS="1").returncode == 0
