"""The three searchers the benchmarks compare, each run the same way and measured alike.

- `ours`: the project's search, called through `search.driver.run` with a `SearchConfig`,
  exactly what `python -m search.run` does.
- `optuna`: a plain Optuna loop (`study.optimize`, TPE, no pruning) in one process whose
  torch uses every core.
- `stock`: a Ray Tune script as Ray's docs write one: OptunaSearch + ASHA, one CPU per
  trial, the dataset loaded inside each trial, a checkpoint at every epoch, defaults
  otherwise.

All three train with `models.train` on the same split, from the same search space, seed
and epoch cap, and start from the tutorial's configuration. Each run happens in a fresh
child process (`bench.child`), so no Ray instance, environment variable or torch thread
setting leaks from one system into the next.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.lstm import LSTMConfig, RowLSTM
from models.train import Evaluation, evaluate, to_inputs, train_epoch
from search import metrics as m
from search.data import Dataset, load_dataset

SYSTEMS = ("ours", "optuna", "stock")
LABELS = {
    "ours": "ours (search.run)",
    "optuna": "plain Optuna",
    "stock": "stock Ray Tune",
}
RESULT_JSON = "result.json"  # Ray Tune's per-trial log, one JSON object per report


@dataclass(frozen=True)
class SearchSpec:
    """One search to run and measure: which system, on what, how big."""

    system: str
    seed: int
    trials: int
    max_epochs: int
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    grace_epochs: int = 1  # ours only; equal to max_epochs switches ASHA's stopping off
    reduction_factor: float | None = None  # ours only; None: search.run's default
    workdir: str = "."  # where run folders go


def run_search(spec: SearchSpec) -> dict:
    """Run one search and return its measurements (plain JSON values).

    `events` lists (seconds since start, val_acc) for every evaluated epoch, in time order;
    the clock starts before the data is loaded and Ray is started, and `wall_s` stops after
    Ray has shut down: each system pays for its own start-up.
    """
    runner = {"ours": _run_ours, "optuna": _run_optuna, "stock": _run_stock}[spec.system]
    started = time.time()
    result = runner(spec, started)  # sets wall_s before it evaluates on test
    result["events"].sort()
    result.update(system=spec.system, seed=spec.seed, trials=spec.trials)
    return result


# -- the shared training loop (the trainable's loop, without Ray) ---------------------------


def train_trial(
    config: dict,
    data: Dataset,
    max_epochs: int,
    seed: int,
    on_epoch: Callable[[int, Evaluation, float, torch.nn.Module], None] | None = None,
) -> None:
    """Train one configuration epoch by epoch as `search.trainable.train_lstm` does.

    Same seeding, model, optimiser, shuffle and evaluation; `on_epoch(epoch, val,
    epoch_seconds, model)` sees each epoch's validation result.
    """
    torch.manual_seed(seed)
    model = RowLSTM(LSTMConfig.from_dict(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    batch_size = int(config["batch_size"])
    train_x, train_y = to_inputs(data.train.images), data.train.labels
    val_x, val_y = to_inputs(data.val.images), data.val.labels
    for epoch in range(1, max_epochs + 1):
        started = time.perf_counter()
        shuffle = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loss = train_epoch(model, optimizer, train_x, train_y, batch_size, shuffle)
        if not math.isfinite(loss):
            return
        val = evaluate(model, val_x, val_y)
        if on_epoch is not None:
            on_epoch(epoch, val, time.perf_counter() - started, model)


def test_accuracy(model_config: dict, state_dict: dict, data: Dataset) -> float:
    model = RowLSTM(LSTMConfig.from_dict(model_config))
    model.load_state_dict(state_dict)
    return evaluate(model, to_inputs(data.test.images), data.test.labels).acc


def _load(spec: SearchSpec) -> Dataset:
    return load_dataset(spec.dataset, spec.data_dir, seed=spec.seed)


# -- ours -------------------------------------------------------------------------------


def _run_ours(spec: SearchSpec, started: float) -> dict:
    import pandas as pd

    from search.config import SearchConfig
    from search.driver import run
    from search.run_folder import TRIALS_CSV, ranked, read_run_info
    from search.trainable import load_checkpoint

    name = f"ours-s{spec.seed}-t{spec.trials}-e{spec.max_epochs}-g{spec.grace_epochs}"
    asha = {}
    if spec.reduction_factor is not None:
        name += f"-rf{spec.reduction_factor:g}"
        asha["reduction_factor"] = spec.reduction_factor
    config = SearchConfig(
        trials=spec.trials,
        dataset=spec.dataset,
        data_dir=Path(spec.data_dir) if spec.data_dir else None,
        max_epochs=spec.max_epochs,
        grace_epochs=spec.grace_epochs,
        name=name,
        storage_path=str(Path(spec.workdir) / "runs"),
        overwrite=True,
        seed=spec.seed,
        # The HTML report written after a search is not search time, and the baselines
        # write none.
        no_report=True,
        **asha,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the CLI's top-5 table
        run(config)
    wall = time.time() - started
    run_dir = Path(config.storage_path).resolve() / name
    table = pd.read_csv(run_dir / TRIALS_CSV)
    best = ranked(table).iloc[0]
    state = load_checkpoint(run_dir / best["checkpoint"])
    result = _tune_folder_measures(run_dir, started)
    result.update(
        best_val_acc=float(best[m.VAL_ACC]),
        best_config={k: _plain(best[k]) for k in state["model_config"]}
        | {"lr": float(best["lr"]), "batch_size": int(best["batch_size"])},
        test_acc=test_accuracy(state["model_config"], state["model"], _load(spec)),
        epochs=int(table["epochs"].sum()),
        trial_epochs=[int(e) for e in table["epochs"]],
        fit_wall_s=float(read_run_info(run_dir)["wall_seconds"]),
        wall_s=wall,
        cpus=os.cpu_count(),
    )
    return result


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _tune_folder_measures(experiment_dir: Path, started: float) -> dict:
    """Every reported epoch of every trial, from Tune's result.json files.

    `curves` holds each trial's (val_acc, epoch seconds) per epoch, in the order the trials
    started (when Tune wrote their params.json), for `bench.replay`.
    """
    events, busy, in_trials, curves = [], 0.0, 0.0, []
    for path in experiment_dir.glob(f"*/{RESULT_JSON}"):
        record, accs, seconds = {}, [], []
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get(m.VAL_LOSS) is None:  # a diverged trial's single report
                accs.append(0.0)
                seconds.append(record.get("time_this_iter_s", 0.0))
                continue
            # Tune stamps results in whole seconds; +0.5 s centres the rounding.
            events.append((record["timestamp"] + 0.5 - started, record[m.VAL_ACC]))
            busy += record.get(m.EPOCH_SECONDS, 0.0)
            accs.append(record[m.VAL_ACC])
            seconds.append(record.get(m.EPOCH_SECONDS, record.get("time_this_iter_s", 0.0)))
        # The trial's own clock, from its start in the worker to its last report.
        in_trials += record.get("time_total_s", 0.0)
        curves.append(((path.parent / "params.json").stat().st_mtime, accs, seconds))
    curves.sort()
    return {
        "events": events,
        "busy_s": busy,
        "trial_s": in_trials,
        "curves": [{"val_acc": a, "seconds": s} for _, a, s in curves],
    }


# -- plain Optuna -----------------------------------------------------------------------


def _run_optuna(spec: SearchSpec, started: float) -> dict:
    import optuna

    from search.space import SEED_CONFIG, sample

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(os.cpu_count() or 1)  # one process, every core
    data = _load(spec)
    events: list[tuple[float, float]] = []
    best: dict = {"key": (-1.0, 0.0)}
    epochs = 0
    busy = 0.0

    def objective(trial: optuna.Trial) -> float:
        nonlocal epochs, busy
        sample(trial)
        config = dict(trial.params)
        trial_best = 0.0

        def on_epoch(epoch: int, val: Evaluation, seconds: float, model) -> None:
            nonlocal epochs, busy, trial_best
            epochs += 1
            busy += seconds
            events.append((time.time() - started, val.acc))
            trial_best = max(trial_best, val.acc)
            if (val.acc, -val.loss) > best["key"]:
                best.update(
                    key=(val.acc, -val.loss),
                    config=config,
                    state={k: v.clone() for k, v in model.state_dict().items()},
                )

        train_trial(config, data, spec.max_epochs, spec.seed, on_epoch)
        return trial_best

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed)
    )
    study.enqueue_trial(SEED_CONFIG)
    study.optimize(objective, n_trials=spec.trials)
    return {
        "wall_s": time.time() - started,
        "events": events,
        "busy_s": busy,
        "best_val_acc": best["key"][0],
        "best_config": best["config"],
        "test_acc": test_accuracy(best["config"], best["state"], data),
        "epochs": epochs,
        "cpus": os.cpu_count(),
    }


# -- stock Ray Tune ---------------------------------------------------------------------


def stock_trainable(config: dict, dataset: str, data_dir: str | None, seed: int, max_epochs: int):
    """A trainable as Ray's PyTorch examples write it: data loaded in the trial, every
    epoch reported with a checkpoint."""
    from ray import tune

    data = load_dataset(dataset, data_dir, seed=seed)

    def on_epoch(epoch: int, val: Evaluation, seconds: float, model) -> None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save({"model": model.state_dict(), "config": config}, Path(folder) / "model.pt")
            tune.report(
                {
                    m.EPOCH: epoch,
                    m.VAL_ACC: val.acc,
                    m.VAL_LOSS: val.loss,
                    m.EPOCH_SECONDS: seconds,
                },
                checkpoint=tune.Checkpoint.from_directory(folder),
            )

    train_trial(config, data, max_epochs, seed, on_epoch)


def _run_stock(spec: SearchSpec, started: float) -> dict:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from search.space import SEED_CONFIG, sample

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        storage = (Path(spec.workdir) / "runs").resolve()
        name = f"stock-s{spec.seed}-t{spec.trials}-e{spec.max_epochs}"
        tuner = tune.Tuner(
            tune.with_resources(
                functools.partial(
                    stock_trainable,
                    dataset=spec.dataset,
                    data_dir=spec.data_dir,
                    seed=spec.seed,
                    max_epochs=spec.max_epochs,
                ),
                {"cpu": 1},
            ),
            tune_config=tune.TuneConfig(
                metric=m.VAL_ACC,
                mode=m.MODE,
                search_alg=OptunaSearch(
                    space=sample,
                    metric=m.VAL_ACC,
                    mode=m.MODE,
                    points_to_evaluate=[SEED_CONFIG],
                    seed=spec.seed,
                ),
                # As in Ray's "Tune PyTorch" tutorial: grace 1, halving at every rung.
                scheduler=ASHAScheduler(max_t=spec.max_epochs, grace_period=1, reduction_factor=2),
                num_samples=spec.trials,
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
        )
        grid = tuner.fit()
        best = grid.get_best_result(scope="all")
        checkpoint = best.get_best_checkpoint(m.VAL_ACC, m.MODE)
        with checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder) / "model.pt", weights_only=True)
        best_val = float(best.metrics_dataframe[m.VAL_ACC].max())
        epochs = int(
            sum(len(r.metrics_dataframe) for r in grid if r.metrics_dataframe is not None)
        )
    finally:
        ray.shutdown()
    wall = time.time() - started
    result = _tune_folder_measures(storage / name, started)
    result.update(
        wall_s=wall,
        best_val_acc=best_val,
        best_config=saved["config"],
        test_acc=test_accuracy(saved["config"], saved["model"], _load(spec)),
        epochs=epochs,
        cpus=os.cpu_count(),
    )
    return result
