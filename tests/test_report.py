"""Reports and comparisons, and what they must refuse.

Most tests read run folders built by hand without Ray (tests/fake_run.py), in seconds;
one checks the report a real tiny search wrote for itself.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from analysis import compare, document, report
from models.lstm import ROWS
from models.train import evaluate, to_inputs
from search.run_folder import (
    REPORT_DIR,
    RUN_JSON,
    TRIALS_CSV,
    load_model,
    ranked,
    read_test_split,
)
from search.space import SEED_LABEL
from tests.conftest import REPO
from tests.fake_run import build_run

FIGURE_CSVS = {
    "timestep_accuracy": ["timestep_accuracy.csv"],
    "recognition_points": ["recognition_points.csv"],
    "digit_1": ["digit_probabilities.csv"],
    "hyperparameters": ["hyperparameters.csv"],
    "importances": ["importances.csv"],
    "best_so_far": ["best_so_far_by_trial.csv", "best_so_far_by_time.csv"],
    "learning_curves": ["learning_curves.csv"],
    "epochs_reached": ["epochs_reached.csv"],
}


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A private copy of a run, for tests that damage it (the shared run stays intact)."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(REPORT_DIR))
    return dest


@pytest.fixture(scope="module")
def finished_run(fake_run, tmp_path_factory) -> Path:
    return copy_run(fake_run, tmp_path_factory.mktemp("report") / "fake")


@pytest.fixture(scope="module")
def built(finished_run) -> Path:
    return report.write_report(finished_run, top_k=2)


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    """Another run, on the same kind of digits with another seed, to compare."""
    return build_run(tmp_path_factory.mktemp("second"), "other", seed=2)


def test_report_has_every_part_and_file(built, finished_run):
    assert_whole_report(built, finished_run)


@pytest.mark.e2e
def test_a_real_search_writes_its_whole_report(tiny_run):
    result, run_dir = tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert_whole_report(run_dir / REPORT_DIR, run_dir)


def assert_whole_report(built: Path, run_dir: Path) -> None:
    assert built == run_dir / "report"
    html = (built / "index.html").read_text()
    markdown = (built / "report.md").read_text()
    for title in (
        "Summary",
        "Accuracy versus timestep",
        "Recognition point",
        "The best model reading digits, row by row",
        "What each hyperparameter does",
        "Environment",
    ):
        assert f"{title}</h2>" in html and f". {title}\n" in markdown
    for figure, csvs in FIGURE_CSVS.items():
        with Image.open(built / f"{figure}.png") as image:
            assert image.size[0] > 300 and image.size[1] > 200
        assert f"]({figure}.png)" in markdown
        for name in csvs:
            assert not pd.read_csv(built / name).empty, name
    # Every figure is embedded, and nothing is fetched from anywhere.
    pngs = sorted(built.glob("*.png"))
    assert html.count('<img src="data:image/png;base64,') == len(pngs) == html.count("<img ")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert not list(built.parent.glob(".report.*"))  # no temporary folder left behind


def test_summary_ranks_by_validation_and_adds_test_accuracy(built, finished_run):
    trials = pd.read_csv(finished_run / TRIALS_CSV, dtype={"trial_id": str})
    summary = pd.read_csv(built / "summary.csv", dtype={"trial_id": str}, keep_default_na=False)
    top = ranked(trials).head(2)["trial_id"].tolist()
    seed = trials.loc[trials["label"] == SEED_LABEL, "trial_id"].item()
    assert summary["trial_id"].tolist() == top + ([seed] if seed not in top else [])
    assert summary["test_acc"].between(0, 1).all()
    md = (built / "report.md").read_text()
    info = json.loads((finished_run / RUN_JSON).read_text())
    assert f"{len(trials)} trials" in md and info["command"] in md


def test_timestep_accuracy_is_test_accuracy_after_each_of_28_rows(built, finished_run):
    curves = pd.read_csv(built / "timestep_accuracy.csv", dtype={"trial_id": str})
    assert list(curves.columns) == ["label", "trial_id", "timestep", "accuracy"]
    summary = pd.read_csv(built / "summary.csv", dtype={"trial_id": str})
    assert set(curves["trial_id"]) == set(summary["trial_id"])
    for trial_id, curve in curves.groupby("trial_id"):
        assert curve["timestep"].tolist() == list(range(1, ROWS + 1))
        assert curve["label"].nunique() == 1
        assert curve["accuracy"].between(0, 1).all()
        final = summary.loc[summary["trial_id"] == trial_id, "test_acc"].item()
        assert math.isclose(curve["accuracy"].iloc[-1], final)

    # The best curve, recomputed here from the checkpoint and the saved test split.
    trials = pd.read_csv(finished_run / TRIALS_CSV, dtype={"trial_id": str})
    best = ranked(trials).iloc[0]
    model = load_model(finished_run / best["checkpoint"])
    test = read_test_split(finished_run)
    expected = evaluate(model, to_inputs(test.images), test.labels).acc_by_step
    got = curves.loc[curves["trial_id"] == best["trial_id"], "accuracy"].tolist()
    assert got == pytest.approx(expected)


def test_recognition_points_match_the_curves(built):
    curves = pd.read_csv(built / "timestep_accuracy.csv", dtype={"trial_id": str})
    points = pd.read_csv(built / "recognition_points.csv", dtype={"trial_id": str})
    for _, row in points.iterrows():
        curve = curves[curves["trial_id"] == row["trial_id"]].set_index("timestep")["accuracy"]
        for level, column in ((0.5, "rows_to_50pct"), (0.9, "rows_to_90pct")):
            reached = curve[curve >= level]
            if reached.empty:
                assert pd.isna(row[column])
            else:
                assert row[column] == reached.index.min()


def test_digit_probabilities_are_distributions(built):
    probs = pd.read_csv(built / "digit_probabilities.csv")
    assert probs["example"].nunique() == report.EXAMPLE_DIGITS
    sums = probs.groupby(["example", "timestep"])["probability"].sum()
    assert len(sums) == report.EXAMPLE_DIGITS * ROWS
    assert sums.to_numpy() == pytest.approx(1.0, abs=1e-5)


def test_report_cli_takes_top_k(fake_run, tmp_path, capsys):
    run_dir = copy_run(fake_run, tmp_path / "run")
    assert report.main([str(run_dir), "--top-k", "1"]) == 0
    out = run_dir / REPORT_DIR
    assert capsys.readouterr().out == f"{out / 'index.html'}\n"
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    trials = pd.read_csv(run_dir / TRIALS_CSV, dtype={"trial_id": str})
    seed_is_best = ranked(trials).iloc[0]["label"] == SEED_LABEL
    assert len(summary) == (1 if seed_is_best else 2)  # the best one, and the seed
    assert json.loads((out / "report.json").read_text())["top_k"] == 1


def test_strings_from_the_run_are_escaped(fake_run, tmp_path):
    evil = "<script>alert(1)</script>"
    run_dir = copy_run(fake_run, tmp_path / "run<b>&x")
    info = json.loads((run_dir / RUN_JSON).read_text())
    info.update(command=f"python -m search.run --name {evil}", dataset=f"<img src=x>{evil}")
    (run_dir / RUN_JSON).write_text(json.dumps(info))
    out = report.write_report(run_dir, top_k=1)
    for name in ("index.html", "report.md"):
        text = (out / name).read_text()
        assert "<script>" not in text and "<img src=x>" not in text and "<b>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "run&lt;b&gt;&amp;x" in text


def test_missing_checkpoint_is_reported_plainly(fake_run, tmp_path):
    run_dir = copy_run(fake_run, tmp_path / "run")
    trials = pd.read_csv(run_dir / TRIALS_CSV, dtype={"trial_id": str})
    best = ranked(trials).iloc[0]
    (run_dir / best["checkpoint"]).unlink()
    out = report.write_report(run_dir, top_k=2)
    html = (out / "index.html").read_text()
    assert f"checkpoint {best['checkpoint']} is missing" in html
    curves = pd.read_csv(out / "timestep_accuracy.csv", dtype={"trial_id": str})
    assert best["trial_id"] not in set(curves["trial_id"]) and not curves.empty
    summary = pd.read_csv(out / "summary.csv", dtype={"trial_id": str})
    assert pd.isna(summary.loc[summary["trial_id"] == best["trial_id"], "test_acc"]).all()
    assert (out / "digit_1.png").exists()  # drawn with the next best model, and said so
    assert "The best configuration&#x27;s checkpoint is unusable" in html


def test_a_failed_build_leaves_the_previous_report_whole(fake_run, tmp_path, monkeypatch):
    run_dir = copy_run(fake_run, tmp_path / "run")
    out = report.write_report(run_dir, top_k=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full, say")

    monkeypatch.setattr(document, "render_markdown", broken)
    with pytest.raises(RuntimeError):
        report.write_report(run_dir, top_k=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".report")) == []


@pytest.mark.parametrize("damage", ["empty folder", "no trials.csv", "nothing finished", "absent"])
def test_bad_run_folders_exit_2_with_one_line(damage, fake_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    if damage == "empty folder":
        run_dir.mkdir()
    elif damage != "absent":
        copy_run(fake_run, run_dir)
    if damage == "no trials.csv":
        (run_dir / TRIALS_CSV).unlink()
    if damage == "nothing finished":
        trials = pd.read_csv(run_dir / TRIALS_CSV)
        trials["status"] = "failed"
        trials.to_csv(run_dir / TRIALS_CSV, index=False)
    assert report.main([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis.report: error: ") and err.count("\n") == 1
    assert not (run_dir / REPORT_DIR).exists()


def test_report_cli_runs_as_a_module(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr
        == f"analysis.report: error: {tmp_path} is not a run folder: it has no run.json\n"
    )


def test_compare_two_runs_with_different_seeds(finished_run, second_run, tmp_path):
    out = tmp_path / "cmp"
    assert compare.main([str(finished_run), str(second_run), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert runs["run"].tolist() == ["fake", "other"]
    assert runs["seed"].tolist() == [1, 2]
    assert runs["test_acc"].between(0, 1).all()
    # Each run's top 3 configurations, 28 rows each: two families of curves.
    curves = pd.read_csv(out / "timestep_accuracy.csv", dtype={"trial_id": str})
    for name, run_dir in (("fake", finished_run), ("other", second_run)):
        trials = pd.read_csv(run_dir / TRIALS_CSV, dtype={"trial_id": str})
        family = curves[curves["run"] == name]
        assert family["trial_id"].unique().tolist() == ranked(trials).head(3)["trial_id"].tolist()
        assert (
            family.groupby("trial_id")["timestep"].apply(list).tolist()
            == [list(range(1, ROWS + 1))] * 3
        )
    html = (out / "index.html").read_text()
    assert html.count("<img ") == 2 and "fake" in html and "other" in html
    # Rebuilding over an earlier comparison is fine; over anything else it is refused.
    assert compare.main([str(finished_run), str(second_run), "--out", str(out)]) == 0
    assert compare.main([str(finished_run), str(second_run), "--out", str(tmp_path)]) == 2


def test_compare_needs_two_runs(finished_run, tmp_path, capsys):
    assert compare.main([str(finished_run), "--out", str(tmp_path / "c")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_a_multi_objective_run_reports_its_pareto_front(fake_pareto_run, tmp_path):
    run_dir = copy_run(fake_pareto_run, tmp_path / "pareto")
    built = report.write_report(run_dir, top_k=1)
    front = pd.read_csv(built / "pareto_front.csv", dtype={"trial_id": str})
    # Dominance checked here by hand: on the front iff no trial is as good on both
    # objectives (accuracy up, parameters down) and better on one.
    for _, row in front.iterrows():
        beaten = front[
            (front["val_acc"] >= row["val_acc"])
            & (front["params"] <= row["params"])
            & ((front["val_acc"] > row["val_acc"]) | (front["params"] < row["params"]))
        ]
        assert row["on_front"] == beaten.empty, row["trial_id"]
    on_front = set(front.loc[front["on_front"], "trial_id"])
    assert len(on_front) >= 2  # the fake trials trade size for accuracy
    # Every front configuration is in the summary and has its curve.
    summary = pd.read_csv(built / "summary.csv", dtype={"trial_id": str})
    curves = pd.read_csv(built / "timestep_accuracy.csv", dtype={"trial_id": str})
    assert on_front <= set(summary.loc[summary["on_front"], "trial_id"])
    assert on_front <= set(curves["trial_id"])
    md = (built / "report.md").read_text()
    assert ". Pareto front\n" in md and "![" in md.split(". Pareto front\n")[1]


def test_a_single_objective_report_has_no_front_and_shows_the_anytime_figures(built):
    md = (built / "report.md").read_text()
    assert "Pareto front" not in md
    summary = pd.read_csv(built / "summary.csv", dtype={"trial_id": str})
    assert summary["test_auc_rows"].between(0, 1).all()
    assert summary["val_auc_rows"].notna().any()
    # The area is the mean of the 28 accuracies in the curves.
    curves = pd.read_csv(built / "timestep_accuracy.csv", dtype={"trial_id": str})
    area = curves.groupby("trial_id")["accuracy"].mean()
    shown = summary.set_index("trial_id")["test_auc_rows"]
    assert shown.to_dict() == pytest.approx(area.to_dict())


def test_compare_puts_a_last_row_run_and_an_every_row_run_side_by_side(tmp_path):
    runs = [build_run(tmp_path / loss, loss, seed=3, loss=loss) for loss in ("last", "all")]
    out = tmp_path / "cmp"
    assert compare.main([*map(str, runs), "--out", str(out), "--top-k", "2"]) == 0
    table = pd.read_csv(out / "runs.csv")
    assert table["loss"].tolist() == ["last", "all"]
    curves = pd.read_csv(out / "timestep_accuracy.csv", dtype={"trial_id": str})
    assert curves.groupby("run")["trial_id"].nunique().to_dict() == {"last": 2, "all": 2}
