"""Studies that outlive a run, with real parts: a PostgreSQL server, two searches sharing
a study, warm starts, and Optuna's dashboard in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from search import study as st
from search.run_folder import TRIALS_CSV, read_trials
from search.space import SEED_CONFIG, SearchSpace
from tests.conftest import REPO
from tests.test_report_browser import Browser, chromium  # noqa: F401 (a fixture)
from tests.test_resume import (
    Search,
    assert_study_matches,
    base_args,
    epochs_reported,
    optuna_study,
    run_search,
    searches,  # noqa: F401 (a fixture)
    wait_for,
)
from tests.test_study import dashboard

pytestmark = pytest.mark.e2e
PARAMS = SearchSpace().params  # MNIST's: no patch

SECRET = "hunter2"  # trust authentication: any password works, and must land nowhere


def test_search_in_postgres_survives_sigkill_and_resume(tmp_path, postgres, searches):  # noqa: F811
    url = postgres.create_database("killed")
    with_password = postgres.url("killed", password=SECRET)
    run_dir = tmp_path / "runs" / "pg"
    args = base_args(tmp_path, "pg", "--trials", "6", "--max-epochs", "2", "--no-report")
    search = searches(*args, "--study-storage", with_password)
    wait_for(lambda: len(epochs_reported(run_dir)) >= 4, what="four trials to start")
    search.kill_group()

    # run.json keeps no password, so a resume without the URL is refused in one line ...
    code, _, err = run_search(*args, "--resume")
    assert code == 2 and "--study-storage URL again" in err and err.count("\n") == 1
    code, out, err = run_search(*args, "--resume", "--study-storage", with_password)
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV)
    assert len(table) == 6 and set(table["status"]) <= {"completed", "stopped"}
    assert_study_matches(run_dir, table, url)
    for path in run_dir.rglob("*"):  # ... nor does any other file of the run folder
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert not (run_dir / st.STUDY_DB).exists()  # the study is in the database


def test_two_searches_share_one_study_then_warm_start_a_third(tmp_path, postgres):
    url = postgres.create_database("shared")
    common = ["--trials", "3", "--max-epochs", "1", "--no-report", "--confirm-top", "0"]
    common += ["--study-storage", url, "--study-name", "mnist"]
    both = [Search(*base_args(tmp_path, name, *common)) for name in ("a", "b")]
    try:
        results = [s.wait(timeout=400) for s in both]
    finally:
        for s in both:
            s.kill_group()
    for code, _, err in results:
        assert code == 0, err[-3000:]

    study = st.load(st.StudyRef(url, "mnist"))
    tables = {name: pd.read_csv(tmp_path / "runs" / name / TRIALS_CSV) for name in "ab"}
    assert len(study.trials) == 6  # the counts add up
    assert sorted(t.number for t in study.trials) == list(range(6))
    numbers = [set(t["study_trial"]) for t in tables.values()]
    assert numbers[0].isdisjoint(numbers[1]) and numbers[0] | numbers[1] == set(range(6))
    for name, table in tables.items():
        assert_study_matches(tmp_path / "runs" / name, table)
    # The tutorial's configuration was enqueued once, for whichever search took it first.
    assert sum(t.params == SEED_CONFIG for t in study.trials) == 1

    # A third search starts from the shared study's six trials (named by run a's folder)
    # and trains their best configurations again first.
    warm = base_args(tmp_path, "c", "--trials", "2", "--max-epochs", "1", "--no-report")
    warm += ["--confirm-top", "0", "--warm-start", str(tmp_path / "runs" / "a")]
    code, out, err = run_search(*warm)
    assert code == 0, err[-3000:]
    run_dir = tmp_path / "runs" / "c"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["warm_start"] == {"copied": 6, "remeasured": 3}
    seeded = optuna_study(run_dir).trials
    copies = [t for t in seeded if "warm_start_from" in t.user_attrs]
    assert {t.user_attrs["warm_start_from"] for t in copies} == {str(run_dir.parent / "a")}
    assert len(copies) == 6 and len(seeded) == 6 + 3  # the third retraining still queued
    own = read_trials(run_dir / TRIALS_CSV)  # floats exactly as written
    assert_study_matches(run_dir, own)
    value = {tuple(t.params[k] for k in PARAMS): t.value for t in study.trials}
    third_best = sorted(value.values(), reverse=True)[2]
    for row in own[list(PARAMS)].itertuples(index=False, name=None):
        assert value[row] >= third_best  # one of the three best, trained again

    # --overwrite replaces run b's folder but not the study it shares: the new search
    # adds its trial to the six, and nothing of the old folder is left.
    old_b = tmp_path / "runs" / "b"
    old_files = {p.relative_to(old_b) for p in old_b.rglob("*") if p.is_file()}
    (old_b / "notes.txt").write_text("the user's own file, in the old folder")
    again = base_args(tmp_path, "b", *common, "--overwrite")
    code, out, err = run_search(*again, "--trials", "1")  # the last --trials counts
    assert code == 0, err[-3000:]
    new_files = {p.relative_to(old_b) for p in old_b.rglob("*") if p.is_file()}
    old_trials = {p.parts[0] for p in old_files if p.parts[0].startswith("trial_")}
    assert not (old_b / "notes.txt").exists()
    assert old_trials and old_trials.isdisjoint(p.parts[0] for p in new_files)
    assert len(st.load(st.StudyRef(url, "mnist")).trials) == 7
    table = pd.read_csv(old_b / TRIALS_CSV)
    assert list(table["study_trial"]) == [6]
    assert_study_matches(old_b, table)


def test_searches_starting_at_once_on_an_empty_database_share_one_study(postgres):
    url = postgres.create_database("race")
    script = (
        "import sys; from search import study as st; from search.space import SearchSpace; "
        "space = SearchSpace(); "
        "st.prepare(st.StudyRef(sys.argv[1], 'one'), "
        "st.signature('mnist-5k', 'last', 'accuracy', space))"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", script, url], cwd=REPO, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [r.communicate(timeout=120)[1].decode() for r in racers]
    assert [r.returncode for r in racers] == [0] * 4, errors
    assert [s.study_name for s in st.open_storage(url).get_all_studies()] == ["one"]


def test_a_study_of_another_search_is_refused_before_anything_is_written(tmp_path, postgres):
    url = postgres.create_database("other")
    st.prepare(
        st.StudyRef(url, "every-row"), st.signature("mnist-5k", "all", "accuracy", SearchSpace())
    )
    args = base_args(tmp_path, "x", "--study-storage", url, "--study-name", "every-row")
    code, _, err = run_search(*args)
    assert code == 2 and err.count("\n") == 1
    assert "was made for another search: loss all (this one: last)" in err
    assert not (tmp_path / "runs" / "x").exists()


def test_the_dashboard_shows_the_study_of_a_run(chromium, tiny_run):  # noqa: F811
    run_dir = tiny_run[1]
    with dashboard(run_dir) as page:
        trials = len(optuna_study(run_dir).trials)
        text = page_text(chromium, f"{page}/trials", until=lambda text: "Trial 0" in text)
    assert f"\n{trials} Trials\n" in text and text.startswith("tiny")


def page_text(executable: str, url: str, until, timeout: float = 60) -> str:
    """The text of page `url` once `until(text)` holds (the dashboard renders in script)."""
    browser = Browser(executable)
    try:
        session = browser.open(url)
        deadline = time.monotonic() + timeout
        while True:
            text = browser.send(
                "Runtime.evaluate",
                {"expression": "document.body.innerText", "returnByValue": True},
                session=session,
            )["result"].get("value", "")
            if until(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.5)
    finally:
        browser.close()
