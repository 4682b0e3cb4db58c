"""ASHA on training seconds (`--asha-time seconds`): the unit its rungs count in.

On epochs, ASHA judges every trial after the same number of epochs, whatever they cost:
a 3-layer network at batch 32 (about ten times the tutorial's epoch time here) reaches
the rung at epoch 3 for ten times the price of the tutorial's network, and TPE, drawn to
such networks by their accuracy, can spend a search's time on them. On seconds, trials
are judged after the same training time, so a costly configuration must show its worth
after fewer epochs. The rungs keep the meaning of `--grace-epochs` and
`--reduction-factor` in one unit: the seconds of one epoch (training and evaluation) of
the tutorial's network, timed on a worker with a trial's resources before the search.
"""

from __future__ import annotations

import ray
import torch

from models.train import epoch_samples, evaluate, fold_seed, timed, train_epoch
from search.trainable import TrialData, trial_device

# Enough series to time an epoch's steps steadily (about a second on a CPU core for
# MNIST's digits); an epoch over more is timed on this many and scaled, so that full
# MNIST costs the same second.
TIMED_TRAIN_SERIES = 5000
TIMED_VAL_SERIES = 1000
WARM_UP_SERIES = 500  # the first steps of a fresh process pay one-off set-up costs


def unit_seconds(data: TrialData, seed_config: dict, cpus: float, gpus: float, seed: int) -> float:
    """Seconds of one epoch of the tutorial's network (`seed_config`, the space's) over
    every fold of `data`, timed on a worker with a trial's CPUs and GPUs (so a GPU search
    times the GPU): one fold's epoch, times the folds."""
    # Remote by reference to this module's function: workers import it, nothing is pickled.
    task = ray.remote(time_epoch).options(num_cpus=cpus, num_gpus=gpus)
    training, evaluating = ray.get(task.remote(data, seed_config, max(1, int(cpus)), seed))
    return len(data.folds) * (training + evaluating)


def time_epoch(data: TrialData, config: dict, threads: int, seed: int) -> tuple[float, float]:
    """Seconds to train `config` for one epoch of the first fold and to evaluate its
    validation series, scaled from at most TIMED_*_SERIES series."""
    torch.set_num_threads(threads)
    device = trial_device()
    fold = TrialData(data.pool, data.folds[:1], data.classes, data.scaling).fold_runs(
        config, seed, device
    )[0]
    samples = epoch_samples(len(fold.train), len(data.folds))
    timed_samples = min(samples, TIMED_TRAIN_SERIES)
    timed_val = fold.val.take(slice(TIMED_VAL_SERIES))
    batch = int(config["batch_size"])
    shuffle = torch.Generator().manual_seed(fold_seed(seed, 0))
    warm = min(WARM_UP_SERIES, timed_samples)
    train_epoch(fold.model, fold.optimizer, fold.train, batch, shuffle, samples=warm)
    training = timed(
        lambda: train_epoch(
            fold.model, fold.optimizer, fold.train, batch, shuffle, samples=timed_samples
        ),
        device,
    )
    evaluating = timed(lambda: evaluate(fold.model, timed_val), device)
    return (
        training * samples / timed_samples,
        evaluating * len(fold.val) / len(timed_val),
    )
