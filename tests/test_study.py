"""The study in storage: signatures, warm starts, and a searcher restored from a crash."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from analysis import results
from search import metrics as m
from search import study as st
from search.config import SearchConfig
from search.errors import UserError
from search.run_record import RunRecord, StudyRecord
from search.searcher import EpochOptunaSearch, reconnect_study_to, tpe_sampler
from search.space import SEED_CONFIG, SearchSpace
from tests.conftest import REPO
from tests.postgres import free_port
from tests.test_resume import base_args, run_search, wait_for
from tests.test_searcher import MAX_EPOCHS, epoch, run_trial

RUN = "run-a@2026-11-30T00:00:00+00:00"


sample = SearchSpace()  # MNIST's


def signature(**changes) -> dict:
    return {**st.signature("mnist-5k", "last", "accuracy", sample), **changes}


def stored_searcher(
    ref: st.StudyRef, run: str = RUN, unit_seconds: float | None = None
) -> EpochOptunaSearch:
    st.prepare(ref, signature())
    return EpochOptunaSearch(
        space=sample,
        objectives=m.objective_metrics("accuracy"),
        sampler=tpe_sampler(0),
        max_epochs=MAX_EPOCHS,
        unit_seconds=unit_seconds,
        study=ref,
        run=run,
        points_to_evaluate=[SEED_CONFIG],
    )


@pytest.fixture
def ref(tmp_path) -> st.StudyRef:
    return st.StudyRef.in_run_folder(tmp_path, "study")


def test_a_study_of_another_search_is_refused_in_one_line(ref):
    st.prepare(ref, signature())
    st.prepare(ref, signature())  # the same search joins it
    with pytest.raises(UserError, match="dataset mnist-5k \\(this one: mnist\\)"):
        st.prepare(ref, signature(dataset="mnist"))
    space = signature()["space"] | {"lr": "{}"}
    with pytest.raises(UserError, match="another search space \\(differs in lr\\)"):
        st.prepare(ref, signature(space=space))
    # Long series search a patch too: a study of another length's space is another search.
    long = st.signature("mnist-5k", "last", "accuracy", SearchSpace.for_length(150))
    with pytest.raises(UserError, match="differs in patch"):
        st.prepare(ref, long)


def test_a_study_found_between_its_creation_and_its_signature_is_joined(ref, monkeypatch):
    """Creating a study and signing it are two commits: a search starting at that moment
    finds it unsigned, waits for the signature and joins; another tool's study, never
    signed, is refused once the wait is over."""
    import threading

    import optuna

    monkeypatch.setattr(st, "_RETRY_SECONDS", 0.05)
    storage = st.open_storage(ref.url)
    created = optuna.create_study(storage=storage, study_name=ref.name)
    signing = threading.Timer(0.2, created.set_user_attr, (st.SIGNATURE_ATTR, signature()))
    signing.start()
    assert st.prepare(ref, signature()).user_attrs[st.SIGNATURE_ATTR] == signature()
    signing.join()

    optuna.create_study(storage=storage, study_name="another tool's")
    foreign = st.StudyRef(ref.url, "another tool's")
    with pytest.raises(UserError, match="was not made by this search tool"):
        st.prepare(foreign, signature())


def test_studies_of_other_data_are_refused_even_under_one_name(ref, tmp_path):
    """Two .npz files of the same name hold other series: their fingerprints differ."""
    from search.data import load_dataset
    from search.driver import _data_identity

    paths = []
    for i, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        x = np.random.default_rng(i).standard_normal((20, 5))
        np.savez(tmp_path / folder / "mine.npz", X=x, y=np.arange(20) % 2)
        paths.append(str(tmp_path / folder / "mine.npz"))
    first, second = (_data_identity(load_dataset(p)) for p in paths)
    assert first != second and first.startswith(paths[0] + "@npz:")
    st.prepare(ref, st.signature(first, "last", "accuracy", sample))
    with pytest.raises(UserError, match="made for another search: dataset"):
        st.prepare(ref, st.signature(second, "last", "accuracy", sample))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense://x", "not a database URL"),
        ("postgresql+psycopg://me:secret@127.0.0.1:1/db", "cannot open study storage"),
    ],
)
def test_bad_or_unreachable_storage_is_a_user_error_without_the_password(url, says):
    with pytest.raises(UserError, match=says) as error:
        st.open_storage(url)
    assert "secret" not in str(error.value) and "\n" not in str(error.value)


def test_each_trial_names_its_run_and_tune_trial(ref):
    s = stored_searcher(ref)
    run_trial(s, "t1", [0.5, 0.6, 0.7])
    (trial,) = st.load(ref).trials
    assert trial.params == SEED_CONFIG  # the tutorial's configuration first
    assert trial.user_attrs == {st.RUN_ATTR: RUN, st.TUNE_ID_ATTR: "t1"}
    assert trial.state is TrialState.COMPLETE and trial.value == 0.7


def test_a_restored_searcher_squares_the_study_with_its_older_saved_state(ref, tmp_path):
    s = stored_searcher(ref)
    run_trial(s, "done", [0.5, 0.6, 0.7])
    s.suggest("running")
    s.on_trial_result("running", epoch(1, 0.4))
    s.suggest("stopped")
    saved = tmp_path / "searcher.pkl"
    s.save(saved)  # Tune's last snapshot before the crash ...
    s.on_trial_result("stopped", epoch(1, 0.3))
    s.on_trial_complete("stopped", epoch(2, 0.35))  # ... then ASHA stops one: PRUNED
    s.suggest("lost")  # ... and one is asked that Tune's state never heard of
    lost_params = s.study.trials[s.numbers["lost"]].params

    reconnect_study_to(ref.url)
    restored = EpochOptunaSearch.__new__(EpochOptunaSearch)
    restored.deadline = None
    restored.restore(saved)
    assert "secret" not in saved.read_text(errors="ignore")
    # The trial told after the snapshot is not told again when Tune reruns it.
    restored.on_trial_complete("stopped", epoch(3, 0.9))
    # The asked-but-lost trial goes to the next trial Tune starts, and the sampler does
    # not draw it again for the one after.
    assert restored.suggest("new") == lost_params
    assert restored.suggest("newer") != lost_params
    for trial_id in ("running", "new", "newer"):
        restored.on_trial_complete(trial_id, epoch(MAX_EPOCHS, 0.8))

    trials = st.load(ref).trials
    assert len(trials) == 5  # no duplicate of the lost trial
    states = {t.user_attrs[st.TUNE_ID_ATTR]: t.state for t in trials}
    assert states == {
        "done": TrialState.COMPLETE,
        "running": TrialState.COMPLETE,
        "stopped": TrialState.PRUNED,
        "new": TrialState.COMPLETE,
        "newer": TrialState.COMPLETE,
    }


def test_a_restored_searcher_reads_its_own_study_where_the_driver_says(ref, tmp_path, monkeypatch):
    # The run folder moved since the state was saved (or --study-storage names the
    # study's new place): the searcher reconnects there, and of the studies the storage
    # holds, to its own.
    st.prepare(st.StudyRef(ref.url, "another search"), signature())
    s = stored_searcher(ref)
    run_trial(s, "done", [0.5, 0.6, 0.7])
    s.suggest("running")
    s.on_trial_result("running", epoch(1, 0.4))
    saved = tmp_path / "searcher.pkl"
    s.save(saved)
    # Asked and told after the snapshot: finished, so no later trial takes it over.
    run_trial(s, "brief", [0.3, 0.35])
    moved = tmp_path / "moved.db"
    st.sqlite_snapshot(st.sqlite_path(ref.url), moved)
    for path in tmp_path.glob(st.STUDY_DB + "*"):
        path.unlink()

    monkeypatch.setattr("search.searcher._restore_url", None)  # reset after the test
    reconnect_study_to(st.sqlite_url(moved))
    restored = EpochOptunaSearch.__new__(EpochOptunaSearch)
    restored.deadline = None
    restored.restore(saved)
    restored.on_trial_result("running", epoch(2, 0.5))
    restored.on_trial_complete("running", epoch(MAX_EPOCHS, 0.6))
    restored.suggest("new")
    restored.on_trial_complete("new", epoch(1, 0.2))

    trials = st.load(st.StudyRef(st.sqlite_url(moved), "study")).trials
    assert [t.user_attrs[st.TUNE_ID_ATTR] for t in trials] == ["done", "running", "brief", "new"]
    assert trials[1].intermediate_values == {1: 0.4, 2: 0.5, 3: 0.6} and trials[1].value == 0.6
    assert [t.state for t in trials[2:]] == [TrialState.PRUNED, TrialState.PRUNED]
    assert not st.load(st.StudyRef(st.sqlite_url(moved), "another search")).trials


def test_a_second_search_on_a_study_does_not_queue_its_points_again(ref):
    run_trial(stored_searcher(ref), "first", [0.5, 0.6, 0.7])  # the tutorial's configuration
    again = stored_searcher(ref, run="another run")  # queues SEED_CONFIG too
    assert again.suggest("second") != SEED_CONFIG
    assert [t.params == SEED_CONFIG for t in st.load(ref).trials] == [True, False]


def test_a_trial_nobody_claimed_is_failed_once_the_search_is_over(ref):
    s = stored_searcher(ref)
    run_trial(s, "t1", [0.5, 0.6, 0.7])
    s.suggest("lost")
    study = st.load(ref)
    assert st.fail_unclaimed(study, "another run", {"t1"}) == 0  # not its trials
    assert st.fail_unclaimed(study, RUN, {"t1"}) == 1
    assert [t.state for t in st.load(ref).trials] == [TrialState.COMPLETE, TrialState.FAIL]


def test_a_warm_start_copies_what_was_measured_and_retrains_the_best(ref, tmp_path):
    s = stored_searcher(ref)
    run_trial(s, "full", [0.5, 0.6, 0.7])  # the tutorial's configuration, enqueued first
    run_trial(s, "second", [0.5, 0.6, 0.65])
    run_trial(s, "cut", [0.4, 0.45])  # PRUNED
    s.suggest("crashed")
    s.on_trial_complete("crashed", error=True)  # FAIL: not copied
    second = st.load(ref).trials[1].params

    (tmp_path / "b").mkdir()
    target = st.prepare(st.StudyRef.in_run_folder(tmp_path / "b", "b"), signature())
    done = st.warm_start(target, [("run-a", st.load(ref))], "run-b")
    assert done == {"copied": 3, "remeasured": 2}
    copies = [t for t in target.trials if "warm_start_from" in t.user_attrs]
    assert [t.state for t in copies] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert copies[0].value == 0.7 and copies[2].intermediate_values == {1: 0.4, 2: 0.45}
    assert all(t.user_attrs["warm_start_from"] == "run-a" for t in copies)
    assert not st.own_trials(target, RUN)  # copies are nobody's to fail or adopt

    # The new search first trains the best two again (best first), then its own; the
    # tutorial's configuration is not queued a second time.
    b = stored_searcher(st.StudyRef.in_run_folder(tmp_path / "b", "b"), run="run-b")
    assert [b.suggest(t) for t in ("first", "next")] == [SEED_CONFIG, second]
    b.suggest("own")  # drawn by TPE (the driver seeds it apart from the source's sampler)
    assert st.sampler_seed(0, "run-b", alone=False) != st.sampler_seed(0, "run-a", alone=False)
    assert {t.user_attrs[st.TUNE_ID_ATTR] for t in st.own_trials(target, "run-b")} == {
        "first",
        "next",
        "own",
    }


def test_the_reports_history_and_importances_come_from_the_study(ref, tmp_path):
    s = stored_searcher(ref)
    run_trial(s, "full", [0.5, 0.6, 0.7])
    run_trial(s, "cut", [0.4, 0.45])
    (tmp_path / "b").mkdir()
    target = st.StudyRef.in_run_folder(tmp_path / "b", "b")
    st.warm_start(st.prepare(target, signature()), [("run-a", st.load(ref))], "run-b")
    b = stored_searcher(target, run="run-b")
    run_trial(b, "own", [0.6, 0.8, 0.75])
    info = RunRecord.new(SearchConfig(), {"name": "toy"}, {}, {})
    info.study = StudyRecord(None, "b", "run-b", sampler_seed=0)
    run = results.Run(tmp_path / "b", info, pd.DataFrame(), pd.DataFrame(), test=None)

    history = results.study_history(run)
    assert history["source"].tolist() == ["warm start", "warm start", "this run"]
    assert history["value"].tolist() == [0.7, 0.45, 0.8]  # pruned: its best epoch
    assert history["best_so_far"].tolist() == [0.7, 0.7, 0.8]
    points, source = results._measured_points(run)
    assert sorted(v for _, v in points) == [0.45, 0.7, 0.8]
    assert source.endswith("3 measured trials, 1 of them this run's")
    # A study this machine cannot open (here: its file is gone): no history, no crash.
    no_study = results.Run(tmp_path / "elsewhere", info, pd.DataFrame(), pd.DataFrame(), None)
    assert results.study_history(no_study).empty


def test_passwords_are_hidden():
    shown = st.without_password("postgresql+psycopg://me:secret@db:5432/x")
    assert shown == "postgresql+psycopg://me:***@db:5432/x"
    assert st.without_password("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_a_bad_or_unreachable_storage_url_is_one_line(tmp_path):
    for url, says in (
        ("nonsense://x", "not a database URL"),
        (f"postgresql+psycopg://lstm@127.0.0.1:{free_port()}/none", "cannot open study storage"),
    ):
        code, _, err = run_search(*base_args(tmp_path, "bad", "--study-storage", url))
        assert code == 2 and says in err and err.count("\n") == 1, err
        assert not (tmp_path / "runs" / "bad").exists()


def test_readme_dashboard_command_refuses_a_folder_that_is_no_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "analysis.dashboard", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "neither a run folder nor a database URL" in done.stderr


def test_the_dashboard_follows_a_live_sqlite_study_through_snapshots(ref, tmp_path):
    s = stored_searcher(ref)
    run_trial(s, "t1", [0.5, 0.6, 0.7])
    info = RunRecord.new(SearchConfig(), {"name": "toy"}, {}, {})
    info.study = StudyRecord(None, ref.name, RUN, sampler_seed=0)
    (tmp_path / "run.json").write_text(info.to_json())
    with dashboard(tmp_path) as page:
        assert page.endswith("/dashboard/studies/1")
        api = page.replace("/dashboard/studies/1", "/api/studies/1?after=0")
        wait_for(lambda: len(dashboard_json(api)) == 1, timeout=30, what="the dashboard")
        run_trial(s, "t2", [0.5, 0.6, 0.8])  # the search goes on writing
        wait_for(lambda: len(dashboard_json(api)) == 2, timeout=30, what="the next snapshot")


@contextlib.contextmanager
def dashboard(source: Path) -> Iterator[str]:
    """`python -m analysis.dashboard SOURCE` on a free port, in a process group of its own
    (stopped with it); yields the page it says it serves."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "analysis.dashboard", str(source), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        found = re.search(r"http://127\.0\.0\.1:\d+/\S+", server.stdout.readline())
        assert found, "the dashboard printed no address"
        yield found.group(0)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def dashboard_json(url: str) -> list:
    """The trials the dashboard's API lists ([] while it is not serving yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)["trials"]
    except OSError:
        return []


def seeded_asha(curves: list[st.WarmCurve], asha_time: str = "epochs", unit_seconds=None):
    """The rungs as a search (max 9 epochs, grace 1, rf 3) starts with them."""
    from search.config import SearchConfig
    from search.tuner import early_stopping, seed_rungs

    config = SearchConfig(max_epochs=9, grace_epochs=1, reduction_factor=3, asha_time=asha_time)
    scheduler = early_stopping(config, unit_seconds)
    seed_rungs(scheduler, curves, sign=1.0, unit_seconds=unit_seconds)
    return scheduler.rungs


def test_a_warm_starts_rungs_judge_new_trials_against_the_earlier_ones():
    earlier = [
        st.WarmCurve({1: 0.9, 2: 0.92, 3: 0.95}, None),
        st.WarmCurve({1: 0.85, 3: 0.93}, None),
        st.WarmCurve({1: 0.8}, None),
    ]
    # Unseeded, a search's first trial is alone at its rung and goes on ...
    assert seeded_asha([]).judge("first", 1, 0.5)
    # ... seeded, it is judged against what the earlier trials reached at epoch 1 and 3.
    seeded = seeded_asha(earlier)
    assert not seeded.judge("first", 1, 0.5)
    assert seeded.judge("good", 1, 0.95)
    assert not seeded.judge("good", 3, 0.94)


def run_costed_trial(s: EpochOptunaSearch, trial_id: str, seconds: float, accs: list[float]):
    """A trial whose epochs each took `seconds` of training, fed as Tune feeds them."""
    s.suggest(trial_id)
    for n, acc in enumerate(accs, start=1):
        result = epoch(n, acc, **{m.TRAIN_SECONDS: seconds * n})
        (s.on_trial_result if n < len(accs) else s.on_trial_complete)(trial_id, result)


def test_a_warm_start_on_seconds_places_earlier_trials_by_what_their_epochs_cost(ref, tmp_path):
    # The source ran on seconds with a 0.5 s unit: one trial as cheap as the tutorial's,
    # one four times as costly, which ASHA cut after its first epoch.
    source = stored_searcher(ref, unit_seconds=0.5)
    run_costed_trial(source, "cheap", 0.5, [0.8, 0.9, 0.95])
    run_costed_trial(source, "costly", 2.0, [0.85])
    assert [t.user_attrs[st.EPOCH_UNITS_ATTR] for t in st.load(ref).trials] == [1.0, 4.0]

    (tmp_path / "b").mkdir()
    target = st.prepare(st.StudyRef.in_run_folder(tmp_path / "b", "b"), signature())
    st.warm_start(target, [("run-a", st.load(ref))], "run-b")
    curves = st.warm_curves(target)
    assert curves == [
        st.WarmCurve({1: 0.8, 2: 0.9, 3: 0.95}, 1.0),
        st.WarmCurve({1: 0.85}, 4.0),
    ]
    # On a machine twice as slow (a 1 s unit), the costly trial's one epoch took 4 s:
    # it sits on the rung at 3 units, not on the first one as it does on epochs.
    rungs = seeded_asha(curves, "seconds", unit_seconds=1.0).recorded
    assert rungs[1.0] == {"warm-start-0": 0.8}
    assert rungs[3.0] == {"warm-start-0": 0.95, "warm-start-1": 0.85}
    on_epochs = seeded_asha(curves).recorded
    assert on_epochs[1] == {"warm-start-0": 0.8, "warm-start-1": 0.85}


def test_a_warm_start_on_seconds_refuses_sources_that_never_measured_their_cost(ref):
    run_trial(stored_searcher(ref), "full", [0.5, 0.6, 0.7])  # a search on epochs
    with pytest.raises(UserError, match="--warm-start a: its trials carry no training cost"):
        st.check_costs(st.load(ref), "--warm-start a")


def test_warm_start_takes_a_run_folder_a_run_name_or_a_study_name(fake_run, tmp_path):
    """--warm-start ITEM: a folder's path, a run's name under --storage-path, or else a
    study's name in --study-storage; each opens the study it names, and nothing else."""
    from search.storage import RunLocation

    source = st.load(st.ref_of_run(fake_run, RunRecord.read(fake_run)))
    sig = source.user_attrs[st.SIGNATURE_ATTR]
    url = st.sqlite_url(tmp_path / "studies.db")
    shared = st.prepare(st.StudyRef(url, "shared"), sig)
    shared.enqueue_trial(SEED_CONFIG)  # one trial, to tell this study from the run's

    def sources(*items: str, **flags) -> list[int]:
        config = SearchConfig(
            storage_path=str(fake_run.parent), warm_start=items, asha_time="epochs", **flags
        )
        new_run = RunLocation.open(config.storage_path, "new")
        opened = st.warm_start_sources(config, new_run, sig)
        assert [item for item, _ in opened] == list(items)
        return [len(study.trials) for _, study in opened]

    runs_trials = len(source.trials)
    assert sources(str(fake_run)) == [runs_trials]  # by path
    assert sources(fake_run.name) == [runs_trials]  # by name under --storage-path
    assert sources("shared", study_storage=url) == [1]  # by study name
    # A run folder wins over a study of the same name; an unknown name is one line.
    assert sources(fake_run.name, study_storage=url) == [runs_trials]
    with pytest.raises(UserError, match="--warm-start nobody: no run folder there"):
        sources("nobody")
    with pytest.raises(UserError, match="--warm-start nobody: no study 'nobody'"):
        sources("nobody", study_storage=url)
