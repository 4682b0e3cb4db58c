"""Fast checks of the benchmark code on tiny synthetic data (no Ray started here)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench import chaos, datasets, gpu, overhead, report, retired, winner
from bench.common import BenchConfig, default_asha_time, load_t10k, summary, table
from bench.systems import SearchSpec, run_search, train_trial
from models.train import evaluate
from search import metrics as m
from search.config import OBJECTIVE_LOSSES
from search.data import load_dataset
from search.run_folder import (
    TRIALS_CSV,
    load_best,
    load_model,
    ranked,
    read_trials,
    write_best,
)
from search.searcher import TPE_SETTINGS
from search.space import SEED_CONFIG
from search.storage import RunLocation
from tests.conftest import write_idx_folder


def test_summary_is_undefined_when_a_seed_never_reached_the_target():
    assert summary([1.0, None, 3.0])["median"] is None
    assert summary([1.0, 5.0, 3.0]) == {
        "median": 3.0,
        "range": [1.0, 5.0],
        "values": [1.0, 5.0, 3.0],
    }


class FakeSearches:
    """Canned search results: ours 4x faster than Optuna, 1.5x faster than stock."""

    WALL = {"ours": 10.0, "optuna": 40.0, "expert": 25.0, "stock": 15.0}

    def get(self, system: str, seed: int, **overrides) -> dict:
        return {
            "wall_s": self.WALL[system],
            "best_val_acc": 0.95 + seed / 1000 - (0.001 if system == "stock" else 0),
            "best_config": dict(SEED_CONFIG),
            "trial_s": 21.0,  # trial clocks: 5% over their train + evaluate time
            "busy_s": 20.0,
            "cpus": 4,
            "run_dir": f"runs/{system}-{seed}",  # ours only, in real searches
            "selected_model": f"runs/{system}-{seed}.pt",  # the peers only
        }


def test_table_is_a_pipe_table_with_cells_as_they_are():
    rows = [
        {"seed": 0, "measure": "  indented", "": "1.000"},
        {"seed": 12, "measure": "x", "": ""},
    ]
    assert table(rows).splitlines() == [
        "| seed | measure |  |",
        "|---|---|---|",
        "| 0 |   indented | 1.000 |",
        "| 12 | x |  |",
    ]
    # Lists with the columns given: a header may repeat.
    assert table([[1, 2]], ["speed-up", "speed-up"]).splitlines()[0] == "| speed-up | speed-up |"


def test_every_benchmark_is_registered_once_with_its_parts():
    for name, module in report.BENCHMARKS.items():
        assert module.TITLE and callable(module.run) and callable(module.render), name
        assert callable(module.goals) and callable(module.measure), name  # bench.child's
    # A retired entry of docs/benchmarks.json is a record: no benchmark that runs writes it.
    gone = {name for _, name, *_ in retired.RETIRED}
    assert not gone & report.BENCHMARKS.keys() and gone <= report.load_results().keys()


def test_report_matches_the_committed_figures():
    """docs/benchmarks.md is exactly what the renderers make of docs/benchmarks.json."""
    assert report.render(report.load_results()) == report.REPORT_MD.read_text()


def test_the_retired_experiments_state_the_defaults_of_today():
    """What a retired section says was decided is what the search does now: a default
    changed since must change its words too (and this test)."""
    results = report.load_results()
    assert default_asha_time() == "seconds"
    assert results["tpe"]["full"]["result"]["default_settings"] == TPE_SETTINGS
    assert OBJECTIVE_LOSSES == {"anytime": "all", "early": "uniform"}
    text = retired.render(results)
    assert "count training seconds by default (`--asha-time seconds`)" in text
    assert "`--objective anytime` trains with `--loss all`" in text
    assert "`--objective early` trains with `--loss uniform`" in text
    assert "`n_startup_trials=20`" in text
    # Every retired entry has its section, and each says how to rerun it at the commit.
    sections = text.split("\n### ")[1:]
    assert len(sections) == len(retired.RETIRED)
    assert all(f"`git checkout {retired.COMMIT} && python -m " in x for x in sections)


def test_overhead_compares_warm_runs_and_whole_searches(monkeypatch):
    raw = {
        # The first run of each kind is the cold one and is left out of the warm medians.
        "bare_s": [9.0, 4.0, 4.0, 4.0, 4.2, 3.8],
        "tune_trial_s": [6.0, 4.2, 4.2],
        "tune_epoch_s": [4.0, 4.1, 4.0],
        "tune_fit_s": 20.0,
    }
    monkeypatch.setattr("bench.overhead.run_child", lambda job, config: raw)
    result = overhead.run(BenchConfig(seeds=[0, 1], workdir=""), FakeSearches())
    assert result["overhead_warm"] == pytest.approx(0.05)
    assert result["fresh_worker_s"] == pytest.approx(2.0)
    assert result["in_search_overhead"]["median"] == pytest.approx(0.05)
    assert [g["met"] for g in overhead.goals(result)] == [True]
    assert "1.050" in overhead.render(result)


def test_tracking_alternates_the_order_and_judges_what_it_takes_from_the_machine(monkeypatch):
    from bench import tracking

    class FakeServer:
        uri = "http://127.0.0.1:1"
        stopped = False
        cpu = 0.0

        def cpu_seconds(self):
            return FakeServer.cpu

        def stop(self):
            FakeServer.stopped = True

    order = []

    def child(job, config):
        order.append((job["seed"], job["uri"] is not None))
        tracked = job["uri"] is not None
        FakeServer.cpu += 3.0 if tracked else 0.1  # the server works only when tracked
        wall = {0: 100.0, 1: 200.0, 2: 50.0}[job["seed"]] * (1.5 if tracked else 1.0)
        spent = {"driver_s": 0.5 if tracked else 0.0, "thread_cpu_s": 1.0 if tracked else 0.0}
        return {"wall_s": wall, **spent, "cpus": 2, "trials": 50}

    monkeypatch.setattr("bench.mlflow_server.MlflowServer", FakeServer)
    monkeypatch.setattr("bench.tracking.run_child", child)
    result = tracking.run(BenchConfig(seeds=[0, 1, 2], workdir=""), FakeSearches())
    # Seed 0 untracked first, seed 1 tracked first, ...: drift falls on both sides.
    assert order == [(0, False), (0, True), (1, True), (1, False), (2, False), (2, True)]
    assert FakeServer.stopped
    # (3 s of server + 1 s of thread) over 150 s x 2 cores, for seed 0.
    assert result["machine_share"]["values"][0] == pytest.approx(4 / 300)
    assert result["per_seed"][0]["idle_server_cpu_s"] == pytest.approx(0.1)
    assert result["driver_share"]["median"] == pytest.approx(0.5 / 150)
    assert result["wall_overhead"]["median"] == pytest.approx(0.5)  # shown, not judged
    (judged,) = tracking.goals(result)
    assert judged["met"] is True and "+50.0%" in judged["measured"]
    assert "| 1 | tracked |" in tracking.render(result)
    monkeypatch.setattr("bench.tracking.GOAL", 0.01)
    assert tracking.goals(result)[0]["met"] is False


def test_plain_optuna_baseline_on_tiny_data(tmp_path):
    folder = write_idx_folder(tmp_path / "digits", n_train=120, n_test=40)
    spec = SearchSpec(
        "optuna", 0, 2, 2, dataset="mnist", data_dir=str(folder), workdir=str(tmp_path)
    )
    result = run_search(spec)
    assert result["epochs"] == 4 and len(result["events"]) == 4
    assert result["best_val_acc"] == max(acc for _, acc in result["events"])
    assert 0.0 <= result["test_acc"] <= 1.0 and result["wall_s"] > 0
    assert result["trial_states"] == {"COMPLETE": 2}
    load_model(result["selected_model"])  # the weights it selected, for benchmark 7


def test_expert_optuna_script_on_tiny_data(tmp_path):
    folder = write_idx_folder(tmp_path / "digits", n_train=120, n_test=40)
    spec = SearchSpec(
        "expert", 0, 3, 2, dataset="mnist", data_dir=str(folder), workdir=str(tmp_path)
    )
    threads = torch.get_num_threads()
    try:
        result = run_search(spec)
    finally:
        torch.set_num_threads(threads)  # the script runs torch at one thread per trial
    states = result["trial_states"]
    assert sum(states.values()) == 3 and set(states) <= {"COMPLETE", "PRUNED"}
    # Each trial trains one epoch at least, a completed one both.
    assert max(3, 2 * states.get("COMPLETE", 0)) <= result["epochs"] <= 6
    assert len(result["events"]) == result["epochs"]
    assert result["best_val_acc"] == max(acc for _, acc in result["events"])
    model = load_model(result["selected_model"])
    assert model(torch.zeros(2, 28, 28)).shape == (2, 28, 10)


def test_a_baseline_trial_ends_before_a_diverged_epoch(tmp_path, monkeypatch):
    folder = write_idx_folder(tmp_path / "digits", n_train=120, n_test=40)
    data = load_dataset("mnist", folder, cv_folds=0)
    losses = iter([0.5, float("nan"), 0.4])  # epoch 2 diverges
    monkeypatch.setattr("models.train.train_epoch", lambda *args, **kwargs: next(losses))
    _, epochs = train_trial(SEED_CONFIG, data, max_epochs=3, seed=0)
    assert [(e.epoch, e.train_loss) for e in epochs] == [(1, 0.5)]


def test_gpu_benchmark_times_epochs_and_renders_its_figures(tmp_path, monkeypatch, capsys):
    folder = write_idx_folder(tmp_path / "digits", n_train=120, n_test=40)
    timed = gpu.measure(epochs=1, seed=0, dataset="mnist", data_dir=str(folder), devices=("cpu",))
    assert set(timed["seconds"]) == set(gpu.EPOCH_CONFIGS)
    assert all(s["cpu"] > 0 for s in timed["seconds"].values())

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.run(BenchConfig(workdir=str(tmp_path)), searches=None) is None
    assert "skipped, no CUDA device" in capsys.readouterr().out

    seconds = {label: {"cpu": 4.0, "cuda": 0.5} for label in gpu.EPOCH_CONFIGS}
    search = {"wall_s": 100.0, "best_val_acc": 0.97, "test_acc": 0.96, "epochs": 30, "cpus": 16}
    result = {
        "sizes": {"trials": 8, "max_epochs": 4, "seed": 0},
        "epochs": {"seconds": seconds, "n_train": 4000, "gpu": "H200", "epochs": 2},
        "speedups": {label: 8.0 for label in gpu.EPOCH_CONFIGS},
        "searches": {
            "cpu": {**search, "devices": {"cpu": 8}},
            "gpu": {**search, "wall_s": 60.0, "devices": {"cuda": 8}},
        },
    }
    text = gpu.render(result)
    assert "| tutorial (1x128, batch 100) | 4.00 | 0.50 | 8.0x |" in text
    assert "| 4 trials per GPU | 60 | 0.9700 | 0.9600 | 30 | cuda: 8 |" in text


# Benchmark 7 on canned figures: ours' winner scores 0.97 on t10k and reports 0.972; of its
# top trials by val_acc, the second scores 0.972 (regret 0.2 pts); the peers score lower.
JUDGED = {
    "ours": {"t10k": 0.97, "reported": 0.972, "trial_id": "a"},
    "top10": [
        {"trial_id": "a", "val_acc": 0.975, "t10k": 0.97},
        {"trial_id": "b", "val_acc": 0.97, "t10k": 0.972},
        {"trial_id": "c", "val_acc": 0.96, "t10k": 0.95},
    ],
    "peers": {"optuna": 0.96, "expert": 0.968, "stock": 0.95},
}
SIZES = {"trials": 8, "max_epochs": 4, "dataset": "mnist-5k", "cpus": 4}


def seed_rows(seed: int, ours_wall: float = 10.0) -> list[dict]:
    runs = {s: FakeSearches().get(s, seed) for s in winner.SYSTEMS}
    runs["ours"]["wall_s"] = ours_wall
    return winner.seed_rows(seed, runs, JUDGED, "today")


def test_winner_helpers_on_hand_made_numbers():
    assert winner.honesty_gap_pts(0.972, 0.97) == pytest.approx(0.2)
    assert winner.regret_pts(0.97, [0.97, 0.975, 0.96]) == pytest.approx(0.5)
    assert winner.regret_pts(0.98, [0.97, 0.975]) == 0.0  # the winner is the best
    assert winner.spearman([0.975, 0.97, 0.96], [0.97, 0.972, 0.95]) == pytest.approx(0.5)
    assert winner.spearman([0.9, 0.8, 0.7], [0.5, 0.6, 0.7]) == pytest.approx(-1.0)
    assert winner.spearman([0.9], [0.5]) is None and winner.spearman([0.9] * 2, [0.5, 0.6]) is None


def test_winner_runs_every_system_then_judges_each_seed(tmp_path, monkeypatch):
    jobs = []
    monkeypatch.setattr("bench.winner.run_child", lambda job, c: jobs.append(job) or JUDGED)
    t10k = write_idx_folder(tmp_path / "mnist", n_train=10, n_test=10)
    config = BenchConfig(seeds=[0, 1], winner_max_epochs=12, t10k_dir=str(t10k))
    result = winner.run(config, FakeSearches())
    assert jobs[1] == {
        "kind": "winner",
        "t10k_dir": str(t10k),
        "run_dir": "runs/ours-1",
        "peers": {s: f"runs/{s}-1.pt" for s in ("optuna", "expert", "stock")},
    }
    cpus = os.cpu_count()
    sizes = {"max_epochs": 12, "cpus": cpus, "seeds": [0, 1], "asha_time": "seconds"}
    assert result["sizes"] == SIZES | sizes
    ours = result["by_system"]["ours"]
    assert ours["regret_pts"]["median"] == pytest.approx(0.2)
    assert ours["honesty_gap_pts"]["median"] == pytest.approx(0.2)
    assert ours["spearman_top10"]["median"] == pytest.approx(0.5)
    assert ours["core_utilisation"]["median"] == pytest.approx(0.5)  # 20 s / (10 s x 4)
    optuna = result["by_system"]["optuna"]
    assert optuna["reported_acc"]["values"] == [0.95, 0.951]  # its best val_acc
    assert result["wall_ratios"]["expert"]["median"] == pytest.approx(2.5)
    # Every goal met but the core utilisation (50%).
    goals = winner.goals(result)
    assert [g["met"] for g in goals] == [True, True, True, True, True, False]
    assert "s0 0.9700, s1 0.9700" in goals[0]["measured"]


def test_winner_merges_seeds_and_recomputes_the_goals():
    stored = winner.summarise(seed_rows(0) + seed_rows(1), SIZES)
    assert winner.goals(stored)[4]["met"] is True  # ours' seeds equally fast
    # A later session reruns seed 1 (ours now twice as slow) and adds seed 2.
    new = winner.summarise(seed_rows(1, ours_wall=20.0) + seed_rows(2), SIZES)
    merged = winner.merge(stored, new)
    assert merged["sizes"]["seeds"] == [0, 1, 2]
    assert [(r["seed"], r["system"]) for r in merged["per_seed"]][:5] == [
        (0, "ours"),
        (0, "optuna"),
        (0, "expert"),
        (0, "stock"),
        (1, "ours"),
    ]
    assert merged["by_system"]["ours"]["wall_s"]["values"] == [10.0, 20.0, 10.0]
    assert merged["wall_ratios"]["optuna"]["values"] == [4.0, 2.0, 4.0]
    slowest = winner.goals(merged)[4]
    assert slowest["met"] is False and slowest["measured"] == "2.00x (s0 10 s, s1 20 s, s2 10 s)"
    assert "This entry holds 3 seeds (0, 1, 2)" in winner.render(merged)
    # Other sizes: the stored seeds are not comparable and are dropped. So are seeds
    # whose ASHA counted something else (entries older than the record ran on epochs).
    other = winner.summarise(seed_rows(2), SIZES | {"trials": 50})
    assert winner.merge(stored, other) is other
    assert "This entry holds 1 seed (2)" in winner.render(other)
    on_seconds = winner.summarise(seed_rows(2), SIZES | {"asha_time": "seconds"})
    assert winner.merge(stored, on_seconds) is on_seconds
    assert "ours with ASHA on epochs" in winner.render(stored)


def test_winner_judge_scores_a_run_folder_on_t10k(fake_run, tmp_path):
    run_dir = tmp_path / "fake"
    shutil.copytree(fake_run, run_dir)
    table = read_trials(run_dir / TRIALS_CSV)
    write_best(RunLocation.open(tmp_path, "fake"), table)  # unconfirmed: best by val_acc
    t10k = write_idx_folder(tmp_path / "mnist", n_train=10, n_test=50)
    peer = run_dir / ranked(table).iloc[-1]["checkpoint"]
    judged = winner.measure(str(t10k), str(run_dir), {"optuna": str(peer)})
    top = judged["top10"]
    assert [t["trial_id"] for t in top] == list(ranked(table)["trial_id"])
    assert judged["ours"]["trial_id"] == top[0]["trial_id"]
    assert judged["ours"]["reported"] == top[0]["val_acc"] == ranked(table).iloc[0][m.VAL_ACC]
    assert judged["ours"]["t10k"] == top[0]["t10k"]  # best/ holds that trial's weights
    assert judged["peers"]["optuna"] == top[-1]["t10k"]
    assert all(0.0 <= t["t10k"] <= 1.0 for t in top)


def test_winner_is_skipped_without_the_t10k_files(tmp_path, monkeypatch, capsys):
    from bench import __main__ as cli

    missing = str(tmp_path / "no-mnist")
    monkeypatch.setitem(cli.SCALES, "quick", BenchConfig(t10k_dir=missing))
    monkeypatch.setattr(cli, "RESULTS_JSON", tmp_path / "benchmarks.json")
    monkeypatch.setattr(cli, "REPORT_MD", tmp_path / "benchmarks.md")
    assert cli.main(["--only", "winner"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        f"{winner.TITLE}: skipped, no MNIST t10k files in {missing} (nothing is downloaded)"
    ]
    assert not (tmp_path / "benchmarks.json").exists()


def test_a_seed_run_alone_merges_into_the_stored_entry(tmp_path, monkeypatch):
    from bench import __main__ as cli

    stored = {"command": "c", "date": "d", "seconds": 1, "machine": {}}
    stored["result"] = winner.summarise(seed_rows(0) + seed_rows(1), SIZES)
    results = tmp_path / "benchmarks.json"
    results.write_text(json.dumps({"winner": {"quick": stored}}))
    monkeypatch.setattr(cli, "RESULTS_JSON", results)
    monkeypatch.setattr(cli, "load_results", lambda: report.load_results(results))
    monkeypatch.setattr(cli, "REPORT_MD", tmp_path / "benchmarks.md")
    rerun = winner.summarise(seed_rows(1, ours_wall=20.0), SIZES)
    monkeypatch.setattr(winner, "run", lambda config, searches: rerun)
    assert cli.main(["--only", "winner", "--seeds", "1"]) == 0
    entry = json.loads(results.read_text())["winner"]["quick"]
    assert entry["command"] == "python -m bench --only winner --seeds 1"
    assert entry["result"]["by_system"]["ours"]["wall_s"]["values"] == [10.0, 20.0]
    assert "This entry holds 2 seeds (0, 1)" in (tmp_path / "benchmarks.md").read_text()


def sets_rows(seed: int, name: str, acc: float, reported: float, wall: float, **extra):
    """Ours' row for (seed, set), and rows of the other searches `extra` names."""
    ours = {"test_acc": acc, "reported": reported, "wall_s": wall, "config": dict(SEED_CONFIG)}
    ours |= {"hm": 0.7, "early_acc": 0.8, "earliness": 0.3, "threshold": 0.8}
    rows = [{"seed": seed, "set": name, "system": "ours", **ours}]
    return rows + [{"seed": seed, "set": name, "system": k, **v} for k, v in extra.items()]


def test_the_datasets_benchmark_judges_sets_against_the_published_figures():
    refs = datasets.published()
    assert set(refs) == set(datasets.SETS)
    assert refs["GunPoint"]["dtw_accuracy"] == pytest.approx(0.907, abs=1e-3)
    # The best published figure is the default split's, not a mean over resamples.
    assert refs["ArrowHead"]["best_accuracy"] == pytest.approx(0.8971)
    early = {"test_acc": 0.95, "reported": 0.96, "wall_s": 90.0, "hm": 0.84}
    early |= {"early_acc": 0.9, "earliness": 0.2, "config": dict(SEED_CONFIG)}
    peer = {"test_acc": 0.95, "wall_s": 900.0, "reported": 0.97}
    rows = []
    for seed in (0, 1, 2):
        rows += [
            *sets_rows(seed, "GunPoint", 0.985, 0.99, 200, early=early),
            *sets_rows(seed, "ItalyPowerDemand", 0.96, 0.97, 150, early={**early, "hm": 0.7}),
            *sets_rows(seed, "ArrowHead", 0.80, 0.84, 400),  # slow, and 9.7 points short
            *sets_rows(
                seed, "BasicMotions", 1.0, 1.0, 100, **({"optuna": peer} if seed == 0 else {})
            ),
            *sets_rows(seed, "JapaneseVowels", 0.975, 0.975, 250),
        ]
    sizes = {"trials": 50, "max_epochs": 12, "cpus": 2}
    result = datasets.summarise(rows, sizes)
    assert result["per_set"]["ArrowHead"]["wall_s"] == 400
    assert result["per_set"]["BasicMotions"]["peer_seeds"] == [0]
    # Above DTW everywhere (0.80 > 0.703); gaps 1.5, 1, 9.7, 0, 1.5 points: median 1.5.
    goals = datasets.goals(result)
    assert goals[0]["met"] is True and goals[1]["met"] is True
    assert "1.5 points" in goals[1]["measured"]
    assert [g["met"] for g in goals if "early classification" in g["goal"]] == [True, False]
    assert goals[-1]["met"] is False and "ArrowHead (400 s)" in goals[-1]["measured"]  # time
    text = datasets.render(result)
    assert "| BasicMotions |" in text and "0.950 (900; 0)" in text
    # Merging replaces a (seed, set, search) row and keeps the others: the peer measured
    # in a run of its own joins ours' rows.
    later = [{"seed": 1, "set": "BasicMotions", "system": "optuna", **peer, "test_acc": 0.9}]
    merged = datasets.merge(result, datasets.summarise(later, sizes))
    assert len(merged["per_seed"]) == len(rows) + 1
    assert merged["per_set"]["BasicMotions"]["peer_seeds"] == [0, 1]
    assert merged["per_set"]["BasicMotions"]["test_acc"] == 1.0  # ours' rows kept
    # Under three seeds a goal says n/a rather than met.
    few = datasets.summarise([r for r in rows if r["seed"] == 0], sizes)
    assert {g["met"] for g in datasets.goals(few)} == {None}


def test_the_datasets_judge_reads_best_and_its_stopping_rule(fake_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(fake_run, run_dir)
    write_best(RunLocation.open(tmp_path, "run"), read_trials(run_dir / TRIALS_CSV))
    t10k = write_idx_folder(tmp_path / "mnist", n_train=10, n_test=50)
    judged = datasets.measure(str(run_dir), "mnist-5k", 0, str(t10k))
    expected = evaluate(load_best(run_dir).model, load_t10k(str(t10k)))
    assert judged["test_acc"] == pytest.approx(expected.acc)
    assert 0 <= judged["earliness"] <= 1 and 0 <= judged["hm"] <= 1
    # A peer's selection is a checkpoint file: judged by its accuracy alone.
    weights = run_dir / read_trials(run_dir / TRIALS_CSV)["checkpoint"].iloc[0]
    peer = datasets.measure(str(weights), "mnist-5k", 0, str(t10k))
    assert peer == {"test_acc": evaluate(load_model(weights), load_t10k(str(t10k))).acc}


def test_the_chaos_goal_and_section_say_what_was_lost():
    r = {"faults": ["driver SIGKILL", "node lost"], "sessions": 2, "problems": [], "seed": 0}
    r |= {"seconds": 60.0, "trials": 8, "max_epochs": 3}
    assert [g["met"] for g in chaos.goals(r)] == [True]
    assert "| node lost | 1 |" in chaos.render(r) and "Lost: nothing." in chaos.render(r)
    lost = r | {"problems": ["trials.csv lists 7 trials for 8"]}
    assert chaos.goals(lost)[0]["met"] is False and "7 trials for 8" in chaos.render(lost)


def test_a_job_measured_before_in_the_workdir_is_read_back_not_run_again(tmp_path, monkeypatch):
    """An invocation cut short and run again keeps what its finished jobs measured."""
    from bench import common

    ran = []

    def child(args, **kwargs):  # stands in for `python -m bench.child JOB OUT`
        ran.append(json.loads(args[3]))
        Path(args[4]).write_text(json.dumps({"wall_s": float(len(ran))}))
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(common.subprocess, "run", child)
    config = BenchConfig(workdir=str(tmp_path))
    first, other = {"kind": "search", "seed": 0}, {"kind": "search", "seed": 1}
    assert common.run_child(first, config) == {"wall_s": 1.0}
    assert common.run_child(other, config) == {"wall_s": 2.0}
    assert common.run_child(dict(reversed(first.items())), config) == {"wall_s": 1.0}
    assert ran == [first, other]
    # A job whose measurements never came (killed) runs again.
    next((tmp_path / "logs").glob("000-*.json")).unlink()
    assert common.run_child(first, config) == {"wall_s": 3.0}
