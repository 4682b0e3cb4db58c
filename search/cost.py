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

from models.train import build, evaluate, timed, train_epoch
from search.data import Split
from search.space import SEED_CONFIG
from search.trainable import trial_device

# Enough digits to time an epoch's steps steadily (about a second on a CPU core); an
# epoch over more digits is timed on this many and scaled, so that full MNIST costs
# the same second.
TIMED_TRAIN_DIGITS = 5000
TIMED_VAL_DIGITS = 1000
WARM_UP_DIGITS = 500  # the first steps of a fresh process pay one-off set-up costs


def unit_seconds(train: Split, val: Split, cpus: float, gpus: float, seed: int) -> float:
    """Seconds of one epoch of the tutorial's network over `train` and `val`, timed on a
    worker with a trial's CPUs and GPUs (so a GPU search times the GPU)."""
    timed_train = train[slice(TIMED_TRAIN_DIGITS)]
    timed_val = val[slice(TIMED_VAL_DIGITS)]
    task = _time_epoch.options(num_cpus=cpus, num_gpus=gpus)
    training, evaluating = ray.get(task.remote(timed_train, timed_val, max(1, int(cpus)), seed))
    return training * len(train) / len(timed_train) + evaluating * len(val) / len(timed_val)


@ray.remote
def _time_epoch(train: Split, val: Split, threads: int, seed: int) -> tuple[float, float]:
    """Seconds to train the tutorial's network on `train` once and to evaluate `val`."""
    torch.set_num_threads(threads)
    device = trial_device()
    model, optimizer = build(SEED_CONFIG, seed, device)
    batch = int(SEED_CONFIG["batch_size"])
    x, y = train.tensors(device)
    vx, vy = val.tensors(device)
    shuffle = torch.Generator().manual_seed(seed)
    train_epoch(model, optimizer, x[:WARM_UP_DIGITS], y[:WARM_UP_DIGITS], batch, shuffle)
    training = timed(lambda: train_epoch(model, optimizer, x, y, batch, shuffle), device)
    return training, timed(lambda: evaluate(model, vx, vy), device)
