"""Fast checks of the benchmark code on tiny synthetic data (no Ray started here)."""

from __future__ import annotations

import math

import pytest

from bench import early_stopping, efficiency, growth, loop, overhead, report, utilisation
from bench.common import BenchConfig, summary, table
from bench.replay import Curve, replay
from bench.systems import SearchSpec, run_search, train_trial
from search.data import load_dataset
from search.space import SEED_CONFIG
from tests.conftest import write_idx_folder

EVENTS = [[5.0, 0.50], [9.0, 0.91], [12.0, 0.88], [20.0, 0.95]]


def test_time_to_target_and_best_by_time():
    assert efficiency.time_to(EVENTS, 0.9) == 9.0
    assert efficiency.time_to(EVENTS, 0.99) is None
    assert efficiency.best_by(EVENTS, 15.0) == 0.91
    assert efficiency.best_by(EVENTS, 1.0) == 0.0


def test_fit_exponent_recovers_a_power_law():
    xs = [10, 50, 200]
    assert growth.fit_exponent(xs, [3 * x**1.5 for x in xs]) == pytest.approx(1.5)


def test_summary_is_undefined_when_a_seed_never_reached_the_target():
    assert summary([1.0, None, 3.0])["median"] is None
    assert summary([1.0, 5.0, 3.0]) == {
        "median": 3.0,
        "range": [1.0, 5.0],
        "values": [1.0, 5.0, 3.0],
    }


class FakeSearches:
    """Canned search results: ours 4x faster than Optuna, 1.5x faster than stock."""

    WALL = {"ours": 10.0, "optuna": 40.0, "stock": 15.0}

    def get(self, system: str, seed: int, **overrides) -> dict:
        full = overrides.get("grace_epochs") is not None
        return {
            "wall_s": self.WALL[system] * (2 if full else 1),
            "events": [[self.WALL[system] / 2, 0.93], [self.WALL[system], 0.95 + seed / 1000]],
            "best_val_acc": 0.95 + seed / 1000 - (0.001 if system == "stock" else 0),
            "best_config": dict(SEED_CONFIG),
            "test_acc": 0.94,
            "epochs": 90 if full else 30,
            "trial_epochs": [4, 4, 3, 1] if full else [4, 1, 1, 3],
            "curves": [
                {"val_acc": [0.5 + t / 10 + e / 100 for e in range(4)], "seconds": [1.0] * 4}
                for t in range(4)
            ],
            "trial_s": 21.0,  # trial clocks: 5% over their train + evaluate time
            "busy_s": 20.0,
            "fit_wall_s": self.WALL[system] / 2,
            "cpus": 4,
        }


def test_efficiency_ratios_and_goals():
    config = BenchConfig(seeds=[0, 1, 2], target_acc=0.93, workdir="")
    result = efficiency.run(config, FakeSearches())
    assert result["ratios"]["optuna"]["wall_speedup"]["median"] == pytest.approx(4.0)
    assert result["ratios"]["stock"]["time_to_target_speedup"]["median"] == pytest.approx(1.5)
    # At our wall time (10 s) Optuna has only reached 0.93 (its first epoch, at 20 s, is later).
    assert result["by_system"]["optuna"]["best_val_acc_at_ours_wall"]["median"] == 0.0
    assert [g["met"] for g in result["goals"]] == [True, True, True]
    text = report.render_section(
        "efficiency",
        {
            "command": "python -m bench",
            "date": "today",
            "seconds": 1.0,
            "machine": {
                "cpu": "cpu",
                "cpus": 2,
                "memory_gib": 1,
                "load_before": "0",
                "load_after": "0",
            },
            "result": result,
        },
    )
    assert "4.00 [4.00–4.00]x" in text


def test_early_stopping_ratio():
    result = early_stopping.run(BenchConfig(seeds=[0], max_epochs=4), FakeSearches())
    assert result["epoch_ratio"]["median"] == pytest.approx(1 / 3)
    assert result["gap_pp"]["median"] == 0.0
    # The alternative reduction factor gets its own row; the goals judge the default.
    assert [r["reduction_factor"] for r in result["rows"]] == [3, 4.0]
    assert result["rows"][0]["rungs"] == [
        {"epoch": 1, "reached": 4, "passed": 2, "share": 0.5},
        {"epoch": 3, "reached": 2, "passed": 1, "share": 0.5},
    ]
    assert "2/4 past epoch 1" in early_stopping.render(result)
    assert {(r["grace"], r["reduction_factor"]) for r in result["replay"]} >= {(1, 3), (2, 4)}


def test_utilisation_shares_of_core_seconds():
    result = utilisation.run(BenchConfig(seeds=[0, 1]), FakeSearches())
    # 20 busy core-seconds over 10 s x 4 CPUs, and over the 5 s of Tuner.fit.
    assert result["ours"]["median"] == pytest.approx(0.5)
    assert result["ours_fit"]["median"] == pytest.approx(1.0)
    assert result["stock"]["median"] == pytest.approx(20 / 60)
    assert result["rows"][0]["outside_trials"] == pytest.approx(1 - 21 / 40)
    assert [g["met"] for g in result["goals"]] == [False]
    assert "| 0 | ours (search.run) | 20 | 10 | 4 | 50% | 100% | 2% | 48% |" in (
        utilisation.render(result)
    )


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
    from bench.__main__ import RUN_ORDER

    assert sorted(RUN_ORDER) == sorted(report.BENCHMARKS)
    for name, module in report.BENCHMARKS.items():
        assert module.TITLE and callable(module.run) and callable(module.render), name
    # The benchmarks that measure in a child process (`bench.child` imports them by name).
    assert callable(loop.measure) and callable(overhead.measure)


def test_report_matches_the_committed_figures():
    """docs/benchmarks.md is exactly what the renderers make of docs/benchmarks.json."""
    assert report.render(report.load_results()) == report.REPORT_MD.read_text()


def test_replay_follows_the_rung_rule():
    # Every trial better than the one before: an asynchronous rung passes them all.
    rising = [Curve([0.1 * t + 0.01 * e for e in range(4)], [1.0] * 4) for t in range(5)]
    assert replay(rising, 3, 1, 4, slots=1)["epochs"] == 5 * 4
    # Every trial worse than the first: each later one stops at the first rung (epoch 1).
    falling = [Curve([0.9 - 0.1 * t] * 4, [1.0] * 4) for t in range(5)]
    result = replay(falling, 3, 1, 4, slots=1)
    assert result["epochs"] == 4 + 4 * 1 and result["best_val_acc"] == 0.9
    assert result["wall_s"] == 8.0
    # A diverged trial (curve shorter than the cap) ends where its curve does.
    assert replay([Curve([0.0], [1.0])], 3, 4, 4, slots=2)["epochs"] == 1


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
    assert [g["met"] for g in result["goals"]] == [True]
    assert "1.050" in overhead.render(result)


def test_plain_optuna_baseline_on_tiny_data(tmp_path):
    folder = write_idx_folder(tmp_path / "digits", n_train=120, n_test=40)
    spec = SearchSpec(
        "optuna", seed=0, trials=2, max_epochs=2, dataset="mnist", data_dir=str(folder)
    )
    result = run_search(spec)
    assert result["epochs"] == 4 and len(result["events"]) == 4
    assert result["best_val_acc"] == max(acc for _, acc in result["events"])
    assert 0.0 <= result["test_acc"] <= 1.0 and result["wall_s"] > 0


def test_a_baseline_trial_ends_before_a_diverged_epoch(tmp_path, monkeypatch):
    data = load_dataset("mnist", write_idx_folder(tmp_path / "digits", n_train=120, n_test=40))
    losses = iter([0.5, float("nan"), 0.4])  # epoch 2 diverges
    monkeypatch.setattr("models.train.train_epoch", lambda *args: next(losses))
    _, epochs = train_trial(SEED_CONFIG, data, max_epochs=3, seed=0)
    assert [(e.epoch, e.train_loss) for e in epochs] == [(1, 0.5)]


def test_loop_benchmark_measures_both_loops(tmp_path):
    folder = write_idx_folder(tmp_path / "digits", n_train=120, n_test=40)
    result = loop.measure(epochs=1, seed=0, dataset="mnist", data_dir=str(folder))
    for figures in result["configs"].values():
        for kind in ("train_samples_per_s", "eval_samples_per_s"):
            assert all(math.isfinite(v) and v > 0 for v in figures[kind].values())


def test_subset_folder_holds_the_asked_number_of_digits(tmp_path):
    source = write_idx_folder(tmp_path / "source", n_train=400, n_test=100)
    config = BenchConfig(data_dir=str(source), workdir=str(tmp_path))
    folder = growth.subset_folder(config, 300, seed=0)
    data = load_dataset("mnist", folder)
    assert len(data.train) + len(data.val) == 300
    assert len(data.test) == 100  # at least 100 test digits
