"""Builds, runs and restores the Ray Tune search: Optuna TPE proposes, ASHA stops."""

from __future__ import annotations

import logging
import math
import os
import warnings

import optuna
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from search import metrics as m
from search.budget import Deadline, ResumableSearch
from search.config import SearchConfig
from search.data import Dataset
from search.faults import StorageWatch
from search.run_folder import trial_dir
from search.rungs import RungScheduler
from search.searcher import EpochOptunaSearch, tpe_sampler
from search.space import SearchSpace
from search.storage import RunLocation
from search.study import StudyRef, WarmCurve
from search.trainable import TrialData, TrialSettings, train_lstm


def build_tuner(
    config: SearchConfig,
    data: Dataset,
    space: SearchSpace,
    storage_path: str,
    callbacks: list[tune.Callback],
    max_concurrent: int,
    extra_points: list[dict],
    study: StudyRef,
    run: str,
    sampler_seed: int,
    warm_curves: list[WarmCurve] | None = None,
    unit_seconds: float | None = None,
) -> tune.Tuner:
    """A new search; `extra_points` are tried right after the tutorial's configuration
    (`first_points`). Its Optuna study is `study` (prepared by the caller); `run` marks
    the run's trials; `warm_curves` are a warm start's per-epoch values, which ASHA's
    rungs start with; `unit_seconds` is ASHA's time unit under --asha-time seconds
    (search.cost), in which the searcher records each trial's cost."""
    quiet_tune()
    deadline = Deadline(config.time_budget) if config.time_budget else None
    objectives = m.objective_metrics(config.objective)
    primary, mode = objectives[0]
    searcher = EpochOptunaSearch(
        space=space,
        objectives=objectives,
        points_to_evaluate=[*first_points(space), *extra_points],
        sampler=tpe_sampler(sampler_seed),
        max_epochs=config.max_epochs,
        unit_seconds=unit_seconds,
        deadline=deadline,
        study=study,
        run=run,
    )
    scheduler = early_stopping(config, unit_seconds)
    if isinstance(scheduler, RungScheduler):
        seed_rungs(scheduler, warm_curves or [], 1.0 if mode == "max" else -1.0, unit_seconds)
    return tune.Tuner(
        trainable(config, data),
        tune_config=tune.TuneConfig(
            # ASHA stops trials on the primary objective (always maximised), ties broken
            # by the validation loss; the searcher sees every objective.
            metric=m.RANK_SCORE,
            mode=mode,
            # At most `max_concurrent` running, bounded by what fits: TPE then proposes
            # each trial knowing all but the running ones, and Tune queues as many as
            # can start. (What `max_concurrent_trials` would wrap, wrapped by hand: the
            # outer layer is ours.)
            search_alg=ResumableSearch(ConcurrencyLimiter(searcher, max_concurrent)),
            scheduler=scheduler,
            num_samples=config.trials,
            # Keeps each trial's worker process (torch imported, threads set) for the
            # next trial instead of starting a new one.
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=run_config(config, storage_path, callbacks, stop=deadline),
    )


def first_points(space: SearchSpace) -> list[dict]:
    """The tutorial's configuration, tried first where the space holds it (a --space
    file may leave it out: the search then tries only what the file allows)."""
    return [space.seed_config] if space.contains(space.seed_config) else []


# Under --asha-time seconds, the time after which ASHA ends a trial, in units: far beyond
# what any configuration of the space spends in --max-epochs epochs (the costliest,
# 3x256 at batch 32, takes about 10 units an epoch), so trials end at --max-epochs and
# the rungs run on (grace, grace*rf, grace*rf^2, ...) for as long as a trial trains.
SECONDS_CEILING_UNITS = 30


def early_stopping(config: SearchConfig, unit_seconds: float | None = None) -> TrialScheduler:
    """ASHA on epochs, or on training seconds counted in units of `unit_seconds`; none
    where it may stop nothing (on seconds, a rung at --max-epochs units would otherwise
    still stop a costly trial before its last epoch)."""
    if not config.asha_stops:
        return FIFOScheduler()
    if config.judges_on_seconds:
        if unit_seconds is None:
            raise ValueError("--asha-time seconds needs the unit's seconds (search.cost)")
        return RungScheduler(
            time_attr=m.TRAIN_SECONDS,
            max_t=config.max_epochs * SECONDS_CEILING_UNITS * unit_seconds,
            grace=config.grace_epochs * unit_seconds,
            reduction_factor=config.reduction_factor,
        )
    return RungScheduler(
        time_attr=m.EPOCH,
        max_t=config.max_epochs,
        grace=config.grace_epochs,
        reduction_factor=config.reduction_factor,
    )


def seed_rungs(
    scheduler: RungScheduler,
    curves: list[WarmCurve],
    sign: float,
    unit_seconds: float | None = None,
) -> None:
    """Record earlier trials' per-epoch values in ASHA's rungs, as if they had run here.

    Otherwise a warm-started search's first trials (the best configurations it trains
    again) are judged at each rung against each other only, and ASHA stops all but the
    top third of them however good they are: measured, it cut a 0.980 configuration at
    epoch 3. Seeded, every trial is judged against everything known.

    On epochs, an earlier trial reached epoch e at time e; on seconds (`unit_seconds`),
    at e epochs of its cost in this machine's seconds. Each epoch goes through the rung
    rule itself (values times `sign`: -1 where the metric is minimised), so an earlier
    trial sits on the rungs where a trial running here would have been recorded.
    """
    for i, curve in enumerate(curves):
        epoch_time = 1.0 if unit_seconds is None else curve.epoch_units * unit_seconds
        for epoch, value in sorted(curve.values.items()):
            scheduler.rungs.judge(f"warm-start-{i}", epoch * epoch_time, sign * value)


def run_config(
    config: SearchConfig,
    storage_path: str,
    callbacks: list[tune.Callback],
    stop: tune.Stopper | None = None,
) -> tune.RunConfig:
    """Where and how the trials' results and checkpoints are kept, retries, stopping."""
    primary, mode = m.objective_metrics(config.objective)[0]
    return tune.RunConfig(
        name=config.name,
        storage_path=str(storage_path),
        verbose=0,
        stop=stop,
        # The disk's watch first: it ends the search before the progress line reports a
        # trial failed because the disk did (search.faults).
        callbacks=[StorageWatch(), *callbacks, JsonLoggerCallback(), CSVLoggerCallback()],
        # Every epoch reports a checkpoint; Tune keeps the best by the primary objective
        # and, whatever its score, the latest (Ray never deletes the latest one).
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1,
            checkpoint_score_attribute=primary,
            checkpoint_score_order=mode,
        ),
        failure_config=tune.FailureConfig(max_failures=config.max_failures),
    )


def restore_tuner(run_dir: RunLocation, config: SearchConfig, data: Dataset) -> tune.Tuner:
    """Continue an interrupted search from its saved state (searcher, scheduler, trials).

    Unfinished trials resume from their last checkpoint. Trials that failed stay failed:
    they already had --max-failures retries. (Resuming them would also desynchronise
    OptunaSearch, whose study has already recorded them as FAIL: see tests/test_resume.py.)
    The restore unpickles the run folder's state: restore only folders you trust.
    """
    quiet_tune()
    return tune.Tuner.restore(
        run_dir.uri,
        trainable=trainable(config, data),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def trainable(config: SearchConfig, data: Dataset):
    """The trial function with its data and settings bound, and the resources it needs."""
    settings = TrialSettings(
        max_epochs=config.max_epochs,
        seed=config.seed,
        threads=max(1, math.floor(config.cpus_per_trial)),
        loss=config.loss,
        metric=m.primary_metric(config.objective),
    )
    # with_parameters puts the training data in the object store once; every trial, on
    # any node, gets it from there instead of re-reading files or carrying it in `config`.
    bound = tune.with_parameters(train_lstm, data=TrialData.of(data), settings=settings)
    return tune.with_resources(bound, {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial})


def _trial_dirname(trial) -> str:
    return trial_dir(trial.trial_id)


def quiet_tune() -> None:
    """Our progress line replaces Tune's output; keep what Tune would print otherwise out.

    Set in the driver only (these are read there); a user's own setting wins.
    """
    # The "new output" engine prints a configuration box even at verbose=0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # With num_to_keep=1, every new best checkpoint forces a state snapshot and Tune
    # warns about it each time; the snapshot is small and the warning is only noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A failing trial gets one line from our progress display, not Tune's full traceback
    # (which stays in the trial's error.txt).
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # Only the JSON and CSV loggers: TensorBoard files are not part of the run folder.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's `multivariate` and `constant_liar` are marked experimental; said once here.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # On Ctrl-C, Tune suggests `Tuner.restore(...)`; our CLI prints its own resume command.
    logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
