"""The searchers the benchmarks compare, each run the same way and measured alike.

- `ours`: the project's search, called through `search.driver.run` with a `SearchConfig`,
  exactly what `python -m search.run` does.
- `optuna`: a plain Optuna loop (`study.optimize`, TPE, no pruning) in one process whose
  torch uses every core.
- `expert`: the Optuna script an expert writes (benchmark 7): the same TPE with Hyperband
  pruning on every epoch's val_acc, one trial per core (`n_jobs`), torch at one thread each.
- `stock`: a Ray Tune script as Ray's docs write one: OptunaSearch + ASHA, one CPU per
  trial, the dataset loaded inside each trial, a checkpoint at every epoch, defaults
  otherwise.

All of them train with `models.train` on the same split, from the same search space, seed
and epoch cap, and start from the tutorial's configuration. Each run happens in a fresh
child process (`bench.child`), so no Ray instance, environment variable or torch thread
setting leaks from one system into the next. For benchmark 7, the peers save the weights
they select (`selected_model`) and ours names its run folder (`run_dir`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import itertools
import json
import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from torch import nn

from models.lstm import Ensemble
from models.train import evaluate, fit
from search import metrics as m
from search.config import SearchConfig
from search.data import Dataset, load_dataset
from search.run_folder import (
    RESULT_JSON,
    TRIALS_CSV,
    checkpoint_state,
    load_model,
    ranked,
    read_trials,
)
from search.run_record import RunRecord
from search.space import PARAMS, SearchSpace
from search.trainable import TrialData

LAST_ACC = ("last", "accuracy")  # search.run's default --loss and --objective
LABELS = {
    "ours": "ours (search.run)",
    "optuna": "plain Optuna",
    "expert": "expert Optuna script",
    "stock": "stock Ray Tune",
}


@dataclass(frozen=True)
class SearchSpec:
    """One search to run and measure: which system, on what, how big."""

    system: str
    seed: int
    trials: int
    max_epochs: int
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    loss: str = "last"  # ours only: search.run's --loss
    objective: str = "accuracy"  # ours only: search.run's --objective
    confirm_top: int | None = None  # ours only: search.run's --confirm-top (None: default)
    gpus_per_trial: float = 0.0  # ours only: --gpus-per-trial
    workdir: str = "."  # where run folders go


def run_search(spec: SearchSpec) -> dict:
    """Run one search and return its measurements (plain JSON values).

    `events` lists (seconds since start, val_acc) for every evaluated epoch, in time order;
    the clock starts before the data is loaded and Ray is started, and `wall_s` stops after
    Ray has shut down: each system pays for its own start-up.
    """
    runner = {
        "ours": _run_ours,
        "optuna": _run_optuna,
        "expert": functools.partial(_run_optuna, expert=True),
        "stock": _run_stock,
    }[spec.system]
    started = time.time()
    result = runner(spec, started)  # sets wall_s before it evaluates on test
    result["events"].sort()
    result.update(system=spec.system, seed=spec.seed, trials=spec.trials, cpus=os.cpu_count())
    return result


def train_trial(config: dict, data: Dataset, max_epochs: int, seed: int, loss: str = "last"):
    """The model `config` describes (its folds' models as one Ensemble under
    cross-validation) and an iterator over its epochs of `models.train.fit`
    (`EpochResult`s, judged out of fold), as the search's trainable runs them on a CPU.
    The epochs end before a diverged one: a baseline's trial stops there without
    reporting it."""
    folds = TrialData.of(data).fold_runs(config, seed, torch.device("cpu"))
    epochs = fit(
        folds, batch_size=int(config["batch_size"]), epochs=max_epochs, seed=seed, loss=loss
    )
    members = [fold.model for fold in folds]
    model = members[0] if len(members) == 1 else Ensemble(members)
    return model, itertools.takewhile(lambda epoch: not epoch.diverged, epochs)


def test_accuracy(model: nn.Module, data: Dataset) -> float:
    return evaluate(model, data.test.tensors()).acc


def _load(spec: SearchSpec) -> Dataset:
    return load_dataset(spec.dataset, spec.data_dir, seed=spec.seed)


def _run_ours(spec: SearchSpec, started: float) -> dict:
    from search.driver import run  # imports Ray

    confirm = {} if spec.confirm_top is None else {"confirm_top": spec.confirm_top}
    name = f"ours-s{spec.seed}-t{spec.trials}-e{spec.max_epochs}"
    name += f"-{spec.loss}-{spec.objective}" if (spec.loss, spec.objective) != LAST_ACC else ""
    name += f"-c{spec.confirm_top}" if confirm else ""
    name += f"-gpu{spec.gpus_per_trial:g}" if spec.gpus_per_trial else ""
    name += f"-{spec.dataset}" if spec.dataset != "mnist-5k" else ""
    config = SearchConfig(
        trials=spec.trials,
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        max_epochs=spec.max_epochs,
        name=name,
        storage_path=str(Path(spec.workdir) / "runs"),
        overwrite=True,
        seed=spec.seed,
        loss=spec.loss,
        objective=spec.objective,
        # The HTML report written after a search is not search time, and the baselines
        # write none.
        no_report=True,
        gpus_per_trial=spec.gpus_per_trial,
        **confirm,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the CLI's top-5 table
        run(config)
    wall = time.time() - started
    run_dir = Path(config.storage_path).resolve() / name
    table = read_trials(run_dir / TRIALS_CSV)
    record = RunRecord.read(run_dir)
    best = ranked(table, record.metric).iloc[0]
    return _tune_folder_measures(run_dir, started) | {
        "best_val_acc": float(best[m.VAL_ACC]),
        "best_config": {k: best[k].item() for k in PARAMS},
        "test_acc": test_accuracy(load_model(run_dir / best["checkpoint"]), _load(spec)),
        "epochs": int(table["epochs"].sum()),
        "trial_epochs": [int(e) for e in table["epochs"]],
        "fit_wall_s": record.wall_seconds,
        # The confirmation's retraining (after `Tuner.fit`) is training too.
        "confirm_busy_s": record.confirm_busy_seconds or 0.0,
        "wall_s": wall,
        "run_dir": str(run_dir),
        "devices": record.devices,  # what trained the trials: {"cuda": 50}
    }


def _tune_folder_measures(experiment_dir: Path, started: float) -> dict:
    """Every reported epoch of every trial, from Tune's result.json files.

    `curves` holds each trial's (val_acc, epoch seconds) per epoch, in the order the trials
    started (when Tune wrote their params.json).
    """
    events, busy, in_trials, curves = [], 0.0, 0.0, []
    for path in experiment_dir.glob(f"*/{RESULT_JSON}"):
        record, accs, seconds = {}, [], []
        for line in path.read_text().splitlines():
            record = json.loads(line)  # a diverged trial's single report: val_acc 0, no loss
            accs.append(record[m.VAL_ACC])
            seconds.append(record.get(m.EPOCH_SECONDS, record.get("time_this_iter_s", 0.0)))
            if record.get(m.VAL_LOSS) is not None:
                # Tune stamps results in whole seconds; +0.5 s centres the rounding.
                events.append((record["timestamp"] + 0.5 - started, record[m.VAL_ACC]))
                busy += record[m.EPOCH_SECONDS]
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


def _run_optuna(spec: SearchSpec, started: float, expert: bool = False) -> dict:
    """Plain Optuna: one trial at a time, torch on every core. The expert's script: one
    trial per core (torch at one thread each) and Hyperband pruning on every epoch."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    jobs = (os.cpu_count() or 1) if expert else 1
    torch.set_num_threads((os.cpu_count() or 1) // jobs)
    data = _load(spec)
    events: list[tuple[float, float]] = []
    best: dict = {"key": (-1.0, 0.0)}  # the best epoch of all, with its weights
    busy = 0.0
    lock = threading.Lock()  # the expert's trials run in threads

    space = SearchSpace.for_length(data.length)

    def objective(trial: optuna.Trial) -> float:
        nonlocal busy
        space(trial)
        model, epochs = train_trial(trial.params, data, spec.max_epochs, spec.seed)
        trial_best = 0.0
        for epoch in epochs:
            trial_best = max(trial_best, epoch.val.acc)
            key = (epoch.val.acc, -epoch.val.loss)
            with lock:
                busy += epoch.seconds
                events.append((time.time() - started, epoch.val.acc))
                if key > best["key"]:
                    best.update(key=key, config=dict(trial.params), model=copy.deepcopy(model))
            if expert:
                trial.report(epoch.val.acc, epoch.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned
        return trial_best

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.HyperbandPruner() if expert else None,
    )
    study.enqueue_trial(space.seed_config)
    study.optimize(objective, n_trials=spec.trials, n_jobs=jobs)
    return {
        "wall_s": time.time() - started,
        "events": events,
        "busy_s": busy,
        "best_val_acc": best["key"][0],
        "best_config": best["config"],
        "test_acc": test_accuracy(best["model"], data),
        "epochs": len(events),
        "trial_states": Counter(t.state.name for t in study.trials),
        "selected_model": save_selected(best["model"], spec),
    }


def save_selected(model: nn.Module, spec: SearchSpec) -> str:
    """Save the weights a peer selected, as `search.run_folder.load_model` reads them."""
    name = f"{spec.system}-s{spec.seed}-t{spec.trials}-e{spec.max_epochs}.pt"
    path = (Path(spec.workdir) / "runs" / name).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    torch.save(checkpoint_state(members, [], 0, 0.0), path)
    return str(path)


STOCK_CHECKPOINT = "model.pt"  # the stock script's own checkpoint: {"model", "config"}


def stock_trainable(config: dict, spec: SearchSpec) -> None:
    """A trainable as Ray's PyTorch examples write it: data loaded in the trial, every
    epoch reported with a checkpoint."""
    from ray import tune

    data = _load(spec)
    model, epochs = train_trial(config, data, spec.max_epochs, spec.seed)
    for epoch in epochs:
        with tempfile.TemporaryDirectory() as folder:
            state = {"model": model.state_dict(), "config": config}
            torch.save(state, Path(folder) / STOCK_CHECKPOINT)
            report = {
                m.EPOCH: epoch.epoch,
                m.VAL_ACC: epoch.val.acc,
                m.VAL_LOSS: epoch.val.loss,
                m.EPOCH_SECONDS: epoch.seconds,
            }
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))


def _run_stock(spec: SearchSpec, started: float) -> dict:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    storage = (Path(spec.workdir) / "runs").resolve()
    name = f"stock-s{spec.seed}-t{spec.trials}-e{spec.max_epochs}"
    data = _load(spec)
    space = SearchSpace.for_length(data.length)
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(functools.partial(stock_trainable, spec=spec), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                metric=m.VAL_ACC,
                mode=m.MODE,
                search_alg=OptunaSearch(
                    space=space,
                    metric=m.VAL_ACC,
                    mode=m.MODE,
                    points_to_evaluate=[space.seed_config],
                    seed=spec.seed,
                ),
                # As in Ray's "Tune PyTorch" tutorial: grace 1, halving at every rung.
                scheduler=ASHAScheduler(max_t=spec.max_epochs, grace_period=1, reduction_factor=2),
                num_samples=spec.trials,
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
        )
        best = tuner.fit().get_best_result(scope="all")
        with best.get_best_checkpoint(m.VAL_ACC, m.MODE).as_directory() as folder:
            saved = torch.load(Path(folder) / STOCK_CHECKPOINT, weights_only=True)
    finally:
        ray.shutdown()
    wall = time.time() - started
    model, _ = train_trial(saved["config"], data, 0, spec.seed)
    model.load_state_dict(saved["model"])
    measures = _tune_folder_measures(storage / name, started)
    accs = [acc for _, acc in measures["events"]]  # every epoch it reported: none diverged
    return measures | {
        "wall_s": wall,
        "best_val_acc": max(accs),
        "best_config": saved["config"],
        "test_acc": test_accuracy(model, data),
        "epochs": len(accs),
        "selected_model": save_selected(model, spec),
    }
