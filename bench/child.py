"""`python -m bench.child JOB_JSON OUT_JSON`: one measurement in a fresh process.

Every search and every micro-benchmark runs in its own interpreter so that Ray, the
environment variables a system sets and torch's thread count start clean each time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from bench.systems import SearchSpec, run_search


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    kind = job.pop("kind")
    if kind == "search":
        result = run_search(SearchSpec(**job))
    elif kind == "overhead":
        result = overhead(**job)
    elif kind == "loop":
        from bench.loop import measure_loops

        result = measure_loops(**job)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    Path(argv[1]).write_text(json.dumps(result))
    return 0


def overhead(
    trials: int, max_epochs: int, seed: int, dataset: str, data_dir: str | None, workdir: str
) -> dict:
    """The tutorial's configuration trained `trials` times bare, then as `trials` Tune trials
    through the project's own trainable (one CPU, one torch thread each, one at a time),
    then `trials` times bare again."""
    import os

    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from bench.systems import train_trial
    from search import metrics as mt
    from search.config import SearchConfig
    from search.data import load_dataset
    from search.space import SEED_CONFIG
    from search.tuner import _quiet_tune, _trainable

    data = load_dataset(dataset, data_dir, seed=seed)
    torch.set_num_threads(1)

    def bare() -> float:
        started = time.perf_counter()
        train_trial(SEED_CONFIG, data, max_epochs, seed)
        return time.perf_counter() - started

    # Bare runs before and after the Tune trials: this machine's speed drifts by tens of
    # percent over a minute, and bracketing the Tune runs keeps that drift out of the ratio.
    bare_before = [bare() for _ in range(trials)]

    config = SearchConfig(trials=trials, max_epochs=max_epochs, seed=seed, dataset=dataset)
    _quiet_tune()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        # The trainable, resources, loggers and checkpoint policy of search.tuner; only the
        # searcher is left out so that every trial trains the same configuration.
        tuner = tune.Tuner(
            _trainable(config, data),
            param_space=SEED_CONFIG,
            tune_config=tune.TuneConfig(
                num_samples=trials, max_concurrent_trials=1, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name="overhead",
                storage_path=str((Path(workdir) / "runs").resolve()),
                verbose=0,
                callbacks=[JsonLoggerCallback(), CSVLoggerCallback()],
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1,
                    checkpoint_score_attribute=mt.VAL_ACC,
                    checkpoint_score_order=mt.MODE,
                ),
            ),
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
        "tune_epoch_s": [float(f[mt.EPOCH_SECONDS].sum()) for f in frames],
        "tune_fit_s": fit_s,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
