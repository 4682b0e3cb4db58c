"""Benchmark 2: what running a trial inside Ray Tune costs over running the same training
bare, on one configuration and in whole searches."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from bench.common import BenchConfig, Searches, fmt, goal, run_child, stat, summary, table
from bench.systems import train_trial
from search import metrics as m
from search.config import SearchConfig
from search.data import load_dataset
from search.space import SEED_CONFIG

TITLE = "2. Per-trial overhead"


def measure(
    trials: int, max_epochs: int, seed: int, workdir: str, dataset: str = "mnist-5k"
) -> dict:
    """In a child process: the tutorial's configuration trained `trials` times bare, then as
    `trials` Tune trials through the project's own trainable (one CPU, one torch thread
    each, one at a time), then `trials` times bare again."""
    import ray
    from ray import tune

    from search.tuner import quiet_tune, run_config, trainable

    data = load_dataset(dataset, seed=seed)
    torch.set_num_threads(1)

    def bare() -> float:
        started = time.perf_counter()
        _, epochs = train_trial(SEED_CONFIG, data, max_epochs, seed)
        for _ in epochs:  # every epoch of the product's loop, without Ray
            pass
        return time.perf_counter() - started

    # Bare runs before and after the Tune trials: this machine's speed drifts by tens of
    # percent over a minute, and bracketing the Tune runs keeps that drift out of the ratio.
    bare_before = [bare() for _ in range(trials)]
    config = SearchConfig(trials=trials, max_epochs=max_epochs, seed=seed, name="overhead")
    config.max_failures = 0  # a failed trial is a failed measurement, not one to retry
    quiet_tune()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        # The trainable, resources, loggers and checkpoint policy of search.tuner; only the
        # searcher is left out so that every trial trains the same configuration.
        tuner = tune.Tuner(
            trainable(config, data),
            param_space=SEED_CONFIG,
            tune_config=tune.TuneConfig(
                num_samples=trials, max_concurrent_trials=1, reuse_actors=True
            ),
            run_config=run_config(config, str((Path(workdir) / "runs").resolve()), []),
        )
        started = time.perf_counter()
        grid = tuner.fit()
        fit_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    bare_after = [bare() for _ in range(trials)]
    frames = [r.metrics_dataframe for r in grid]
    return {
        "bare_s": bare_before + bare_after,  # `trials` runs before the Tune trials, then after
        "tune_trial_s": [float(f["time_total_s"].iloc[-1]) for f in frames],
        "tune_epoch_s": [float(f[m.EPOCH_SECONDS].sum()) for f in frames],
        "tune_fit_s": fit_s,
    }


def run(c: BenchConfig, searches: Searches) -> dict:
    seed = c.seeds[0]
    job = {"kind": "overhead", "trials": c.overhead_trials, "max_epochs": c.max_epochs}
    job |= {"seed": seed, "workdir": c.workdir}
    r = run_child(job, c)
    # Both sides warm: the first bare run pays for this process's first torch calls, and
    # the first Tune trial for its worker process (start, `import torch`, dataset fetch).
    bare_warm = statistics.median(r["bare_s"][1:])
    tune_warm = statistics.median(r["tune_trial_s"][1:])
    warm = tune_warm / bare_warm - 1
    fit_per_trial = r["tune_fit_s"] / len(r["tune_trial_s"])
    # The same loop timed inside each trial (`epoch_seconds`) against the trial's own clock:
    # both measured in the same process at the same moment, so the machine's drift cancels.
    in_trial = [t / e - 1 for t, e in zip(r["tune_trial_s"], r["tune_epoch_s"], strict=True)]
    fresh_s = r["tune_trial_s"][0] - r["tune_epoch_s"][0]
    # What a real search pays: all of its trials' clocks over their training and evaluation
    # time, fresh workers, reporting and checkpoints included (our default searches).
    ours = {s: searches.get("ours", s) for s in c.seeds}
    rows = [{"seed": s, "trial_s": x["trial_s"], "busy_s": x["busy_s"]} for s, x in ours.items()]
    in_search = summary([x["trial_s"] / x["busy_s"] - 1 for x in rows])
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
        **{k: summary(r[k]) for k in ("bare_s", "tune_trial_s", "tune_epoch_s")},
        "bare_warm_s": bare_warm,
        "tune_warm_s": tune_warm,
        "tune_fit_per_trial_s": fit_per_trial,
        "overhead_warm": warm,
        "overhead_incl_tuner": fit_per_trial / statistics.median(r["bare_s"]) - 1,
        "in_trial_overhead": in_trial,
        "fresh_worker_s": fresh_s,
        "searches": rows,
        "in_search_overhead": in_search,
    }


def goals(r: dict) -> list[dict]:
    warm, in_search = r["overhead_warm"], r["in_search_overhead"]["median"]
    return [
        goal(
            "a trial inside Ray Tune at most 10% slower than bare",
            f"{100 * warm:+.1f}% (median Tune trial on a reused worker vs bare run); "
            f"{100 * in_search:+.1f}% over all trials of a {r['sizes']['search_trials']}-trial "
            f"search (trial clocks vs their train+eval time); a fresh worker's first "
            f"trial pays {r['fresh_worker_s']:.1f} s once",
            warm <= 0.10 and in_search <= 0.10,
        )
    ]


def render(r: dict) -> str:
    s, n = r["sizes"], r["sizes"]["trials"]

    def ratio(overhead: float) -> str:
        return f"{1 + overhead:.3f}"

    rows = [
        ["bare loop, all runs", stat(r["bare_s"], ".2f"), ""],
        ["bare loop, warm (median)", fmt(r["bare_warm_s"], ".2f"), "1.000"],
        ["Tune trial, its own clock (`time_total_s`), all", stat(r["tune_trial_s"], ".2f"), ""],
        [
            "Tune trial, reused worker (median)",
            fmt(r["tune_warm_s"], ".2f"),
            ratio(r["overhead_warm"]),
        ],
        ["  of which train + evaluate (`epoch_seconds`)", stat(r["tune_epoch_s"], ".2f"), ""],
        *(
            [
                f"Tune trial {i + 1}: its clock over its own train + evaluate "
                f"({'reused' if i else 'fresh'} worker)",
                "",
                ratio(v),
            ]
            for i, v in enumerate(r["in_trial_overhead"])
        ),
        [
            "`Tuner.fit` wall / trials (Tune's start and stop included)",
            fmt(r["tune_fit_per_trial_s"], ".2f"),
            ratio(r["overhead_incl_tuner"]),
        ],
    ]
    searches = [
        {
            "seed": x["seed"],
            "trial clocks s": fmt(x["trial_s"], ".0f"),
            "train + evaluate s": fmt(x["busy_s"], ".0f"),
            "ratio": f"{x['trial_s'] / x['busy_s']:.3f}",
        }
        for x in r["searches"]
    ]
    return "\n\n".join(
        [
            f"The tutorial's configuration, {s['max_epochs']} epochs: {n} times bare (the "
            f"trainable's loop without Ray, one torch thread), then {n} times as a Ray Tune "
            "trial through `search.tuner`'s trainable (one CPU, one at a time, same loggers "
            f"and checkpoint policy), then {n} times bare again. Warm: all but the first run "
            "of each kind (the first bare run pays for the process's first torch calls, the "
            "first Tune trial for starting its worker process).",
            table(rows, ["measure", "seconds per trial", "versus bare (warm)"]),
            f"In whole searches ({s['search_trials']} trials, our default searches): "
            "the sum of the trials' clocks over the sum of their train + evaluate time, so "
            "fresh workers, reporting and checkpoints are all counted.",
            table(searches),
        ]
    )
