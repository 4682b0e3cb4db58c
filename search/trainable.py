"""The Ray Tune trainable: the only code that calls `tune.report` or touches checkpoints.

A thin adapter around `models.train.fit`: it builds a model from the trial's `config`
(hyperparameters only), iterates the epoch loop on tensors that arrived through the
object store, and turns each epoch's result into a Tune report with a checkpoint (model
and optimizer state). Tune keeps two of them per trial: the best epoch's, for selection
and reports, and always the latest, so a trial restarted after a failure redoes at most
the epoch it was in.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray import tune

from models.train import build, fit
from search import metrics as m
from search.data import Split
from search.run_folder import CHECKPOINT_FILE, checkpoint_state, load_checkpoint


@dataclass(frozen=True)
class TrialSettings:
    """System settings every trial shares; kept out of `config`, which is searched."""

    max_epochs: int
    seed: int
    threads: int
    loss: str = "last"  # models.train.ROW_LOSSES


@dataclass(frozen=True)
class TrialData:
    """What a trial trains and selects on. The test split never travels to trials."""

    train: Split
    val: Split


def trial_device() -> torch.device:
    """CUDA when Ray gave this task or trial a GPU and CUDA can use it, else the CPU.

    Asked of Ray, not only of torch: a CPU trial on a GPU node must not take a GPU it was
    not given. A GPU share on a node without CUDA (a logical GPU, a driver missing)
    trains on the CPU, and the trial's reports say so.
    """
    if ray.is_initialized() and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def train_lstm(config: dict, *, data: TrialData, settings: TrialSettings) -> None:
    torch.set_num_threads(settings.threads)
    device = trial_device()
    model, optimizer = build(config, settings.seed, device)
    train, val = data.train.tensors(device), data.val.tensors(device)

    first_epoch, spent = 1, 0.0
    if (checkpoint := tune.get_checkpoint()) is not None:  # the latest epoch's
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / CHECKPOINT_FILE, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch = state[m.EPOCH] + 1
        spent = state.get(m.TRAIN_SECONDS, 0.0)  # absent from checkpoints made before it

    node = ray.get_runtime_context().get_node_id()
    epochs = fit(
        model,
        optimizer,
        train,
        val,
        batch_size=int(config["batch_size"]),
        epochs=settings.max_epochs,
        seed=settings.seed,
        start_epoch=first_epoch,
        loss=settings.loss,
    )
    for result in epochs:
        spent += result.seconds
        report = {
            m.EPOCH: result.epoch,
            m.TRAIN_SECONDS: spent,
            m.NODE: node,
            m.DEVICE: device.type,
            m.TRAIN_LOSS: result.train_loss,
            m.PARAM_COUNT: model.parameter_count,
        }
        if result.diverged:
            # Divergence ends the trial. Zero accuracy tells TPE and ASHA this region is
            # bad; analysis reads the flag and skips the trial.
            tune.report({**report, m.VAL_ACC: 0.0, m.VAL_AUC_ROWS: 0.0, m.DIVERGED: True})
            return
        val_result = result.val
        report.update(
            {
                m.VAL_LOSS: val_result.loss,
                m.VAL_ACC: val_result.acc,
                m.VAL_ACC_BY_STEP: val_result.acc_by_step,
                m.VAL_AUC_ROWS: val_result.auc_rows,
                m.VAL_ROWS_TO_50: val_result.first_row_reaching(0.5),
                m.VAL_ROWS_TO_90: val_result.first_row_reaching(0.9),
                m.EPOCH_SECONDS: result.seconds,
                m.DIVERGED: False,
            }
        )
        with tempfile.TemporaryDirectory() as folder:
            state = checkpoint_state(model, optimizer, result.epoch, val_result.acc, spent)
            torch.save(state, Path(folder) / CHECKPOINT_FILE)
            # report() copies the folder into the run's storage before returning.
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
