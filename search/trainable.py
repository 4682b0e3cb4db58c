"""The Ray Tune trainable: the only code that calls `tune.report` or touches checkpoints.

It builds a model from the trial's `config` (hyperparameters only), trains it epoch by
epoch on tensors that arrived through the object store, and reports validation metrics
after every epoch. A checkpoint (model and optimizer state) is saved whenever validation
accuracy improves, so the one Tune keeps is the trial's best epoch, and a trial restarted
after a failure continues from there.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray import tune

from models.lstm import LSTMConfig, RowLSTM
from models.train import evaluate, to_inputs, train_epoch
from search import metrics as m
from search.data import Dataset

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class TrialSettings:
    """System settings every trial shares; kept out of `config`, which is searched."""

    max_epochs: int
    seed: int
    threads: int


def train_lstm(config: dict, *, data: Dataset, settings: TrialSettings) -> None:
    torch.set_num_threads(settings.threads)
    # Ray hides the GPUs a trial was not given, so this is True only for GPU trials.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(settings.seed)

    model_config = LSTMConfig.from_dict(config)
    model = RowLSTM(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    batch_size = int(config["batch_size"])

    train_x, train_y = to_inputs(data.train.images, device), data.train.labels.to(device)
    val_x, val_y = to_inputs(data.val.images, device), data.val.labels.to(device)

    first_epoch, best_acc = 1, -1.0
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / CHECKPOINT_FILE, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch, best_acc = state["epoch"] + 1, state[m.VAL_ACC]

    node = ray.get_runtime_context().get_node_id()
    for epoch in range(first_epoch, settings.max_epochs + 1):
        started = time.perf_counter()
        # A per-epoch generator makes the shuffle the same after a restart.
        shuffle = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
        train_loss = train_epoch(model, optimizer, train_x, train_y, batch_size, shuffle)
        report = {m.EPOCH: epoch, m.NODE: node, m.TRAIN_LOSS: train_loss}

        if not math.isfinite(train_loss):
            # Divergence ends the trial at once. Zero accuracy tells TPE and ASHA this
            # region is bad; analysis reads the flag and skips the trial.
            tune.report({**report, m.VAL_ACC: 0.0, m.DIVERGED: True})
            return

        val = evaluate(model, val_x, val_y)
        report.update(val.as_metrics("val"))
        report.update({m.EPOCH_SECONDS: time.perf_counter() - started, m.DIVERGED: False})
        if val.acc > best_acc:
            best_acc = val.acc
            with tempfile.TemporaryDirectory() as folder:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "model_config": model_config.to_dict(),
                        m.EPOCH: epoch,
                        m.VAL_ACC: val.acc,
                    },
                    Path(folder) / CHECKPOINT_FILE,
                )
                # report() copies the folder into the run's storage before returning.
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(report)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A trial checkpoint is data, not code: tensors and plain values only."""
    return torch.load(path, map_location=device, weights_only=True)
