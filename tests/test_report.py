"""Reports and comparisons, and what they must refuse.

Most tests read run folders built by hand without Ray (tests/fake_run.py), in seconds:
MNIST-like digits (image data, read row by row) and multivariate series of unequal
lengths with string labels and a searched patch, from an `--objective early` search.
One checks the report a real tiny search wrote for itself.
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
import torch
from PIL import Image

from analysis import compare, document, report
from analysis import results as res
from models.early import harmonic_mean, outcomes
from models.lstm import steps_of
from models.train import SHARES, evaluate, predict_proba
from search import metrics as m
from search.data import Split
from search.run_folder import (
    REPORT_DIR,
    TRIALS_CSV,
    load_model,
    ranked,
    read_test_split,
    read_trials,
)
from search.run_record import RUN_JSON
from search.space import SEED_LABEL
from tests.conftest import REPO
from tests.fake_run import SERIES_CLASSES, build_run

ROWS = 28  # an MNIST digit's rows: the image run's steps

COMMON_CSVS = {
    "accuracy_by_step": ["accuracy_by_step.csv"],
    "accuracy_by_share": ["accuracy_by_share.csv"],
    "recognition_points": ["recognition_points.csv"],
    "tradeoff": ["tradeoff.csv"],
    "hyperparameters": ["hyperparameters.csv"],
    "importances": ["importances.csv"],
    "best_so_far": ["best_so_far_by_trial.csv", "best_so_far_by_time.csv"],
    "learning_curves": ["learning_curves.csv"],
    "epochs_reached": ["epochs_reached.csv"],
}
COMMON_TITLES = (
    "Summary",
    "Accuracy versus share of the series read",
    "Recognition point",
    "Early classification",
    "What each hyperparameter does",
    "Environment",
)
# What differs between image data and other series: the step's name and the picture.
KIND = {
    True: ("Accuracy versus row", "The best model reading digits, row by row", "digit"),
    False: ("Accuracy versus step", "The best model reading series, step by step", "series"),
}


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A private copy of a run, for tests that damage it (the shared run stays intact)."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(REPORT_DIR))
    return dest


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"trial_id": str})


@pytest.fixture(scope="module")
def finished_run(fake_run, tmp_path_factory) -> Path:
    return copy_run(fake_run, tmp_path_factory.mktemp("report") / "fake")


@pytest.fixture(scope="module")
def built(finished_run) -> Path:
    return report.write_report(finished_run, top_k=2)


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> Path:
    """Three channels of unequal lengths, string labels, patches 1, 2 and 4 searched,
    2-fold cross-validation, ranked by the early classifier's HM. Do not modify it."""
    storage = tmp_path_factory.mktemp("series")
    return build_run(storage, "series", seed=1, objective="early", loss="all", kind="series")


@pytest.fixture(scope="module")
def series_built(series_run, tmp_path_factory) -> Path:
    run_dir = copy_run(series_run, tmp_path_factory.mktemp("series-report") / "series")
    return report.write_report(run_dir, top_k=2)


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    """Another run on the same kind of digits, with another seed and every-row loss."""
    return build_run(tmp_path_factory.mktemp("second"), "other", seed=2, loss="all")


def test_report_has_every_part_and_file(built, finished_run):
    assert_whole_report(built, finished_run, image=True)


def test_a_series_report_has_every_part_and_file(series_built):
    assert_whole_report(series_built, series_built.parent, image=False)


@pytest.mark.e2e
def test_a_real_search_writes_its_whole_report(tiny_run):
    result, run_dir = tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert_whole_report(run_dir / REPORT_DIR, run_dir, image=True)


def assert_whole_report(built: Path, run_dir: Path, image: bool) -> None:
    assert built == run_dir / "report"
    html = (built / "index.html").read_text()
    markdown = (built / "report.md").read_text()
    by_step, reading, picture = KIND[image]
    for title in (*COMMON_TITLES, by_step, reading):
        assert f"{title}</h2>" in html and f". {title}\n" in markdown
    figures = {**COMMON_CSVS, f"{picture}_1": [f"{picture}_probabilities.csv"]}
    for figure, csvs in figures.items():
        with Image.open(built / f"{figure}.png") as png:
            assert png.size[0] > 300 and png.size[1] > 200
        assert f"]({figure}.png)" in markdown
        for name in csvs:
            assert not pd.read_csv(built / name).empty, name
    for name in ("summary.csv", "early_classification.csv", "environment.csv"):
        assert not pd.read_csv(built / name).empty, name
    # Every figure is embedded, and nothing is fetched from anywhere.
    pngs = sorted(built.glob("*.png"))
    assert html.count('<img src="data:image/png;base64,') == len(pngs) == html.count("<img ")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert not list(built.parent.glob(".report.*"))  # no temporary folder left behind


def test_summary_ranks_by_validation_and_adds_test_figures(built, finished_run):
    trials = read_csv(finished_run / TRIALS_CSV)
    summary = pd.read_csv(built / "summary.csv", dtype={"trial_id": str}, keep_default_na=False)
    top = ranked(trials).head(2)["trial_id"].tolist()
    seed = trials.loc[trials["label"] == SEED_LABEL, "trial_id"].item()
    assert summary["trial_id"].tolist() == top + ([seed] if seed not in top else [])
    for column in ("test_acc", "test_area", "test_early_acc", "test_earliness", "test_hm"):
        assert summary[column].between(0, 1).all(), column
    md = (built / "report.md").read_text()
    info = json.loads((finished_run / RUN_JSON).read_text())
    assert f"{len(trials)} trials" in md and info["command"] in md
    assert "patch" not in summary.columns  # not searched on 28-row digits


def test_accuracy_by_step_is_test_accuracy_after_each_of_28_rows(built, finished_run):
    curves = read_csv(built / "accuracy_by_step.csv")
    assert list(curves.columns) == res.BY_STEP_COLUMNS
    summary = read_csv(built / "summary.csv")
    assert set(curves["trial_id"]) == set(summary["trial_id"])
    for trial_id, curve in curves.groupby("trial_id"):
        assert curve["step"].tolist() == list(range(1, ROWS + 1))
        assert curve["label"].nunique() == 1
        assert curve["accuracy"].between(0, 1).all()
        final = summary.loc[summary["trial_id"] == trial_id, "test_acc"].item()
        assert math.isclose(curve["accuracy"].iloc[-1], final)

    # The best curve, recomputed here from the checkpoint and the saved test split.
    best = ranked(read_trials(finished_run / TRIALS_CSV)).iloc[0]
    model = load_model(finished_run / best["checkpoint"])
    expected = evaluate(model, read_test_split(finished_run).tensors()).acc_by_step
    got = curves.loc[curves["trial_id"] == best["trial_id"], "accuracy"].tolist()
    assert got == pytest.approx(expected)


def test_series_curves_have_each_configurations_own_steps(series_built):
    run_dir = series_built.parent
    test = read_test_split(run_dir)
    curves = read_csv(series_built / "accuracy_by_step.csv")
    summary = read_csv(series_built / "summary.csv").set_index("trial_id")
    assert summary["patch"].nunique() >= 2  # the shown configurations read differently
    for trial_id, curve in curves.groupby("trial_id"):
        patch = int(summary.loc[trial_id, "patch"])
        steps = math.ceil(test.values.shape[1] / patch)
        assert curve["step"].tolist() == list(range(1, steps + 1))
        # A series shorter than step t keeps its last answer: the last step is the final one.
        assert math.isclose(curve["accuracy"].iloc[-1], summary.loc[trial_id, "test_acc"])
        # Each checkpoint holds one model per fold, read as one ensemble.
        model = load_model(run_dir / summary.loc[trial_id, "checkpoint"])
        assert len(model.members) == 2
        expected = evaluate(model, test.tensors()).acc_by_step
        assert curve["accuracy"].tolist() == pytest.approx(expected)


@pytest.mark.parametrize("which", ["built", "series_built"])
def test_by_share_curves_exist_and_end_at_the_final_accuracy(which, request):
    out = request.getfixturevalue(which)
    shares = read_csv(out / "accuracy_by_share.csv")
    assert list(shares.columns) == res.BY_SHARE_COLUMNS
    summary = read_csv(out / "summary.csv").set_index("trial_id")
    assert set(shares["trial_id"]) == set(summary.index)
    test = read_test_split(out.parent)
    for trial_id, curve in shares.groupby("trial_id"):
        assert curve["share"].tolist() == pytest.approx(list(SHARES))
        assert curve["share"].iloc[-1] == 1.0
        assert math.isclose(curve["accuracy"].iloc[-1], summary.loc[trial_id, "test_acc"])
        model = load_model(out.parent / summary.loc[trial_id, "checkpoint"])
        expected = evaluate(model, test.tensors()).acc_by_share
        assert curve["accuracy"].tolist() == pytest.approx(expected)


def test_recognition_points_match_the_curves(built):
    curves = read_csv(built / "accuracy_by_step.csv")
    points = read_csv(built / "recognition_points.csv")
    for _, row in points.iterrows():
        curve = curves[curves["trial_id"] == row["trial_id"]].set_index("step")["accuracy"]
        for level, column in ((0.5, "steps_to_50pct"), (0.9, "steps_to_90pct")):
            reached = curve[curve >= level]
            if reached.empty:
                assert pd.isna(row[column])
            else:
                assert row[column] == reached.index.min()


def test_test_early_figures_use_the_validation_threshold(fake_run, tmp_path):
    """Thresholds whose test figures are known exactly: 0 decides after the first row
    (earliness 1/28, the first row's accuracy), above 1 never decides early (earliness
    1, the final accuracy, HM 0). A rule re-fitted on test would give neither."""
    run_dir = copy_run(fake_run, tmp_path / "run")
    trials = read_trials(run_dir / TRIALS_CSV)
    first, second = ranked(trials).head(2)["trial_id"]
    trials.loc[trials["trial_id"] == first, m.VAL_THRESHOLD] = 0.0
    trials.loc[trials["trial_id"] == second, m.VAL_THRESHOLD] = 1.1
    trials.to_csv(run_dir / TRIALS_CSV, index=False)
    out = report.write_report(run_dir, top_k=2)

    summary = read_csv(out / "summary.csv").set_index("trial_id")
    curves = read_csv(out / "accuracy_by_step.csv")
    first_row = curves[curves["step"] == 1].set_index("trial_id")["accuracy"]
    at_once = summary.loc[first]
    assert at_once["test_earliness"] == pytest.approx(1 / ROWS)
    assert at_once["test_early_acc"] == pytest.approx(first_row[first])
    assert at_once["test_hm"] == pytest.approx(harmonic_mean(first_row[first], 1 / ROWS))
    never = summary.loc[second]
    assert never["test_earliness"] == 1.0 and never["test_hm"] == 0.0
    assert never["test_early_acc"] == pytest.approx(never["test_acc"])

    tradeoff = read_csv(out / "tradeoff.csv")
    chosen = tradeoff[tradeoff["chosen"]].set_index("trial_id")["threshold"]
    assert chosen[first] == 0.0 and chosen[second] == 1.1
    assert tradeoff.groupby("trial_id")["chosen"].sum().eq(1).all()
    md = (out / "report.md").read_text()
    assert "never (reads to the end)" in md


def test_series_early_figures_are_the_rule_at_the_validation_threshold(series_built):
    run_dir = series_built.parent
    test = read_test_split(run_dir).tensors()
    summary = read_csv(series_built / "summary.csv")
    tradeoff = read_csv(series_built / "tradeoff.csv")
    for _, row in summary.iterrows():
        model = load_model(run_dir / row["checkpoint"])
        probs = predict_proba(model, test)
        steps = steps_of(test.lengths, int(row["patch"]))
        (rule,) = outcomes(
            probs, test.labels, steps, test.lengths, int(row["patch"]), (row[m.VAL_THRESHOLD],)
        )
        assert (row["test_early_acc"], row["test_earliness"], row["test_hm"]) == pytest.approx(
            (rule.accuracy, rule.earliness, rule.hm)
        )
        mine = tradeoff[tradeoff["trial_id"] == row["trial_id"]]
        assert mine.loc[mine["chosen"], "threshold"].tolist() == [row[m.VAL_THRESHOLD]]
        assert mine["earliness"].is_monotonic_increasing  # later decisions at higher thresholds


@pytest.mark.parametrize("which", ["built", "series_built"])
def test_probabilities_are_distributions_over_each_series_own_steps(which, request):
    out = request.getfixturevalue(which)
    image = which == "built"
    picture = KIND[image][2]
    names = {"class_name": str, "true_name": str}  # labels as written: "3", or "walk"
    probs = pd.read_csv(out / f"{picture}_probabilities.csv", dtype=names)
    assert probs["example"].nunique() == report.EXAMPLES
    sums = probs.groupby(["example", "step"])["probability"].sum()
    assert sums.to_numpy() == pytest.approx(1.0, abs=1e-5)
    classes = json.loads((out.parent / RUN_JSON).read_text())["data"]["classes"]
    assert sorted(probs["class_name"].unique()) == sorted(map(str, classes))
    assert probs["true_class"].nunique() == report.EXAMPLES  # series of different classes
    test = read_test_split(out.parent)
    summary = read_csv(out / "summary.csv")
    patch = int(summary.get("patch", pd.Series([1])).iloc[0])
    for index, part in probs.groupby("test_index"):
        own = math.ceil(int(test.lengths[index]) / patch)
        assert part["step"].max() == own == (ROWS if image else own)
        assert (part["true_name"] == str(classes[int(test.labels[index])])).all()


def test_the_series_picture_for_series_and_the_digit_picture_for_images(built, series_built):
    for out, image in ((built, True), (series_built, False)):
        mine, other = ("digit", "series") if image else ("series", "digit")
        assert sorted(p.name for p in out.glob(f"{mine}_*.png")) == [
            f"{mine}_{i}.png" for i in range(1, report.EXAMPLES + 1)
        ]
        assert not list(out.glob(f"{other}_*"))
        md = (out / "report.md").read_text()
        assert KIND[image][1] in md and KIND[not image][1] not in md


def test_a_multivariate_run_of_unequal_lengths_and_string_labels_reports(series_built):
    info = json.loads((series_built.parent / RUN_JSON).read_text())
    data = info["data"]
    assert (data["features"], data["equal_length"], data["image"]) == (3, False, False)
    assert data["classes"] == sorted(SERIES_CLASSES)
    md = (series_built / "report.md").read_text()
    assert "3 classes (cycle on an ergometer, run, walk)" in md
    assert "2-fold cross-validation" in md and "of unequal lengths" in md
    assert "digit" not in md and " rows" not in md  # image words only for images
    hyper = read_csv(series_built / "hyperparameters.csv")
    assert "patch" in hyper.columns and m.VAL_HM in hyper.columns


def test_an_early_objective_run_ranks_by_val_hm(series_run, tmp_path):
    trials = read_trials(series_run / TRIALS_CSV)
    run_dir = copy_run(series_run, tmp_path / "run")
    # The least accurate ranked trial gets the best HM: it must come first.
    last = ranked(trials, m.VAL_ACC).iloc[-1]["trial_id"]
    trials.loc[trials["trial_id"] == last, m.VAL_HM] = 0.999
    trials.to_csv(run_dir / TRIALS_CSV, index=False)
    out = report.write_report(run_dir, top_k=2)
    summary = read_csv(out / "summary.csv")
    expected = ranked(trials, m.VAL_HM).head(2)["trial_id"].tolist()
    assert expected[0] == last and summary["trial_id"].tolist()[:2] == expected
    md = (out / "report.md").read_text()
    assert "highest validation harmonic mean of early accuracy and earliness" in md
    assert "--objective early" in md


def test_report_cli_takes_top_k(fake_run, tmp_path, capsys):
    run_dir = copy_run(fake_run, tmp_path / "run")
    assert report.main([str(run_dir), "--top-k", "1"]) == 0
    out = run_dir / REPORT_DIR
    assert capsys.readouterr().out == f"{out / 'index.html'}\n"
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    trials = read_csv(run_dir / TRIALS_CSV)
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
    best = ranked(read_trials(run_dir / TRIALS_CSV)).iloc[0]
    (run_dir / best["checkpoint"]).unlink()
    out = report.write_report(run_dir, top_k=2)
    html = (out / "index.html").read_text()
    assert f"checkpoint {best['checkpoint']} is missing" in html
    curves = read_csv(out / "accuracy_by_step.csv")
    assert best["trial_id"] not in set(curves["trial_id"]) and not curves.empty
    summary = read_csv(out / "summary.csv")
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


@pytest.mark.parametrize(
    "damage", ["empty folder", "no trials.csv", "nothing finished", "absent", "old format"]
)
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
    if damage == "old format":  # a folder of the MNIST-only version: no format_version
        info = json.loads((run_dir / RUN_JSON).read_text())
        del info["format_version"]
        (run_dir / RUN_JSON).write_text(json.dumps(info))
    assert report.main([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis.report: error: ") and err.count("\n") == 1
    if damage == "old format":
        assert "run folder format 1" in err
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


def test_compare_two_runs_of_one_dataset_by_step(finished_run, second_run, tmp_path):
    out = tmp_path / "cmp"
    assert compare.main([str(finished_run), str(second_run), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert runs["run"].tolist() == ["fake", "other"]
    assert runs["seed"].tolist() == [1, 2] and runs["loss"].tolist() == ["last", "all"]
    assert runs["test_acc"].between(0, 1).all() and runs["test_hm"].between(0, 1).all()
    # Each run's top 3 configurations, 28 rows each: two families of curves.
    curves = read_csv(out / "accuracy_by_step.csv")
    for name, run_dir in (("fake", finished_run), ("other", second_run)):
        trials = read_csv(run_dir / TRIALS_CSV)
        family = curves[curves["run"] == name]
        assert family["trial_id"].unique().tolist() == ranked(trials).head(3)["trial_id"].tolist()
        assert (
            family.groupby("trial_id")["step"].apply(list).tolist()
            == [list(range(1, ROWS + 1))] * 3
        )
    assert not (out / "accuracy_by_share.csv").exists()
    html = (out / "index.html").read_text()
    assert html.count("<img ") == 2 and "fake" in html and "other" in html
    assert "rows to 90%" in html  # both runs are image data
    # Rebuilding over an earlier comparison is fine; over anything else it is refused.
    assert compare.main([str(finished_run), str(second_run), "--out", str(out)]) == 0
    assert compare.main([str(finished_run), str(second_run), "--out", str(tmp_path)]) == 2


def test_compare_runs_of_different_datasets_by_share(finished_run, series_run, tmp_path):
    out = tmp_path / "cmp"
    runs = [str(finished_run), str(series_run)]
    assert compare.main([*runs, "--out", str(out), "--top-k", "2"]) == 0
    curves = read_csv(out / "accuracy_by_share.csv")
    assert set(curves["run"]) == {"fake", "series"}
    assert curves.groupby("trial_id")["share"].apply(list).map(len).eq(len(SHARES)).all()
    assert not (out / "accuracy_by_step.csv").exists()
    runs = pd.read_csv(out / "runs.csv")
    assert runs["objective"].tolist() == ["accuracy", "early"]
    html = (out / "index.html").read_text().rsplit("Environment of each run", 1)[0]
    assert "different datasets" in html and "steps to 90%" in html and "digit" not in html


def test_compare_needs_two_runs(finished_run, tmp_path, capsys):
    assert compare.main([str(finished_run), "--out", str(tmp_path / "c")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_a_multi_objective_run_reports_its_pareto_front(fake_pareto_run, tmp_path):
    run_dir = copy_run(fake_pareto_run, tmp_path / "pareto")
    built = report.write_report(run_dir, top_k=1)
    front = read_csv(built / "pareto_front.csv")
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
    # Every front configuration is in the summary and has its curves.
    summary = read_csv(built / "summary.csv")
    assert on_front <= set(summary.loc[summary["on_front"], "trial_id"])
    assert on_front <= set(read_csv(built / "accuracy_by_step.csv")["trial_id"])
    assert on_front <= set(read_csv(built / "accuracy_by_share.csv")["trial_id"])
    md = (built / "report.md").read_text()
    assert ". Pareto front\n" in md and "![" in md.split(". Pareto front\n")[1]


def test_a_single_objective_report_has_no_front_and_shows_the_anytime_figures(built):
    md = (built / "report.md").read_text()
    assert "Pareto front" not in md
    summary = read_csv(built / "summary.csv")
    assert summary["test_area"].between(0, 1).all()
    assert summary[m.VAL_AREA].notna().any()
    # Digits all have 28 rows: the area is the mean of the 28 accuracies in the curves.
    curves = read_csv(built / "accuracy_by_step.csv")
    area = curves.groupby("trial_id")["accuracy"].mean()
    shown = summary.set_index("trial_id")["test_area"]
    assert shown.to_dict() == pytest.approx(area.to_dict())


def test_example_series_are_of_different_classes_and_stable():
    labels = torch.tensor([2, 2, 0, 1, 0, 2, 1])
    split = Split(torch.zeros(7, 5, 1), torch.full((7,), 5), labels)
    assert res.example_series(split, classes=3, count=3) == [2, 3, 0]
    # Without class 1: the first of classes 0 and 2, then the first series not yet shown.
    assert res.example_series(split[labels != 1], classes=3, count=3) == [2, 0, 1]
