"""The run-folder contract: ranking, trial outcomes, and the direction of the imports."""

from __future__ import annotations

import ast
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from search import metrics as m
from search import run_record
from search.config import SearchConfig, parse_args
from search.run_folder import (
    REPORT_DIR,
    TrialStatus,
    confirmed_text,
    ranked,
    trial_status,
)
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
        (False, False, 1, True, TrialStatus.STOPPED),  # by ASHA's first rung
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


def test_run_json_is_a_typed_record_and_other_formats_are_refused_in_one_line():
    from search.errors import UserError
    from search.run_record import FORMAT_VERSION, RunRecord, StudyRecord

    record = RunRecord.new(SearchConfig(), {"name": "toy"}, {"train": 1}, {})
    record.study = StudyRecord(None, "toy", run="toy@now", sampler_seed=3)
    assert RunRecord.from_json(record.to_json(), "runs/x") == record  # written, read back
    fields = json.loads(record.to_json())
    assert fields["format_version"] == FORMAT_VERSION
    for changed, says in (
        ({"format_version": None}, "made by an older version"),
        ({"format_version": 1}, "made by an older version"),
        ({"format_version": 99}, "made by a newer version"),
        ({"unknown": 1}, "runs/x/run.json is damaged"),
    ):
        with pytest.raises(UserError, match=says) as caught:
            RunRecord.from_json(json.dumps({**fields, **changed}), "runs/x")
        assert "\n" not in str(caught.value)
    del fields["started"]
    with pytest.raises(UserError, match="damaged .*started"):
        RunRecord.from_json(json.dumps(fields), "runs/x")
    for text in ("{not json", "[1, 2]"):
        with pytest.raises(UserError, match="runs/x/run.json is not"):
            RunRecord.from_json(text, "runs/x")


def test_a_checkpoint_of_folds_loads_as_one_ensemble(tmp_path):
    import torch

    from models.lstm import Ensemble, LSTMConfig, SequenceLSTM, SeriesShape
    from search.run_folder import checkpoint_state, load_model

    config = LSTMConfig(hidden_size=8, patch=2)
    shapes = [SeriesShape(3, 2, (float(k),) * 3, (1.0 + k,) * 3) for k in range(3)]
    models = [SequenceLSTM(config, shape) for shape in shapes]  # each its own scaling
    optimizers = [torch.optim.Adam(model.parameters()) for model in models]
    torch.save(checkpoint_state(models, optimizers, 4, 0.9), tmp_path / "c.pt")
    loaded = load_model(tmp_path / "c.pt")
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 3
    for member, model in zip(loaded.members, models, strict=True):
        assert torch.equal(member.shift, model.shift)  # each fold's scaling, not the first's
    x = torch.randn(2, 9, 3)
    expected = torch.stack([m.eval()(x).softmax(-1) for m in models]).mean(0)
    assert torch.allclose(loaded(x).exp(), expected, atol=1e-6)


def test_run_json_records_the_command_the_machine_and_the_versions(monkeypatch):
    monkeypatch.setattr(run_record, "PACKAGES", (*run_record.PACKAGES, "no-such-package"))
    config = parse_args(["--name", "my run", "--trials", "3", "--dataset", "ucr:GunPoint"])
    info = run_record.RunRecord.new(config, {"name": "toy"}, {"train": 1}, {})
    command = shlex.split(info.command)  # a shell gets back the search's flags
    assert command[:3] == [Path(sys.executable).name, "-m", "search.run"]
    assert parse_args(command[3:]) == config
    assert "--name=my run" in command and not any("--seed" in w for w in command)
    assert info.machine == {"platform": platform.platform(), "cpus": os.cpu_count()}
    versions = info.packages
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == metadata.version("torch")
    assert versions["no-such-package"] == "not installed"
    sizes = (info.dataset, info.split_sizes, info.flags["trials"])
    assert sizes == ("toy", {"train": 1}, 3)


def test_a_confirmed_figure_is_written_with_its_interval():
    row = {m.CONFIRMED_ACC: 0.85, m.CONFIRMED_LOW: 0.801, m.CONFIRMED_HIGH: 0.892}
    assert confirmed_text(row) == "85.0% (80.1–89.2)"
    assert confirmed_text({m.CONFIRMED_ACC: math.nan}) == ""  # not confirmed
