"""The run-folder contract: ranking, trial outcomes, and the direction of the imports."""

from __future__ import annotations

import ast
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from search.run_folder import REPORT_DIR, TrialStatus, ranked, trial_status
from tests.conftest import REPO


def test_ranking_puts_the_highest_validation_accuracy_first():
    # Built by hand, so the expected order does not come from the code under test.
    table = pd.DataFrame(
        [
            ("low", "completed", 0.90, 0.30),
            ("tie-worse-loss", "stopped", 0.95, 0.40),
            ("best", "completed", 0.97, 0.50),
            ("tie-better-loss", "completed", 0.95, 0.20),
            ("diverged", "diverged", 0.99, 0.10),
            ("failed", "failed", 0.99, 0.10),
            ("unfinished", "unfinished", 0.99, 0.10),
            ("never-evaluated", "stopped", math.nan, math.nan),
        ],
        columns=["trial_id", "status", "val_acc", "val_loss"],
    )
    assert ranked(table)["trial_id"].tolist() == [
        "best",
        "tie-better-loss",
        "tie-worse-loss",
        "low",
    ]


@pytest.mark.parametrize(
    ("failed", "diverged", "epochs", "ended", "expected"),
    [
        (True, False, 3, True, TrialStatus.FAILED),
        (False, True, 1, True, TrialStatus.DIVERGED),
        (False, False, 4, True, TrialStatus.COMPLETED),
        (False, False, 2, True, TrialStatus.STOPPED),
        (False, False, 2, False, TrialStatus.UNFINISHED),  # paused or running at the end
        (False, False, 0, True, TrialStatus.UNFINISHED),  # never reported
    ],
)
def test_trial_status(failed, diverged, epochs, ended, expected):
    status = trial_status(
        failed=failed, diverged=diverged, epochs=epochs, max_epochs=4, ended=ended
    )
    assert status is expected
    assert status == expected.value  # trials.csv holds the plain word


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level names each module of `package` imports (anywhere in the file)."""
    found = {}
    for path in sorted((REPO / package).glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[path.name] = names
    return found


def test_imports_point_down():
    for module, names in _imports("models").items():
        assert not names & {"search", "analysis", "ray", "bench"}, module
    for module, names in _imports("search").items():
        assert not names & {"analysis", "bench"}, module
    for module, names in _imports("analysis").items():
        assert not names & {"ray", "bench"}, module


def test_a_report_needs_no_ray(fake_run, tmp_path):
    """Analysis on a machine without Ray: `ray` cannot be imported, the report builds."""
    run_dir = tmp_path / "run"
    shutil.copytree(fake_run, run_dir)
    code = (
        "import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError
        "from analysis.report import main\n"
        f"sys.exit(main([{str(run_dir)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.strip()) == run_dir / REPORT_DIR / "index.html"
    assert (run_dir / REPORT_DIR / "index.html").stat().st_size > 0
