"""The Ray Tune trainable: the only code that calls `tune.report` or touches checkpoints.

A thin adapter around `models.train.fit`: it builds one model per fold from the trial's
`config` (hyperparameters only), iterates the epoch loop on tensors that arrived through
the object store, and turns each epoch's result into a Tune report with a checkpoint (the
models' and optimizers' state). Tune keeps two of them per trial: the best epoch's, for
selection and reports, and always the latest, so a trial restarted after a failure redoes
at most the epoch it was in.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray import tune

from models.train import Evaluation, Fold, build, fit, fold_seed
from search import metrics as m
from search.data import Dataset, FoldIndex, Scaling, Split
from search.faults import DiskFault, disk_fault_cause
from search.run_folder import CHECKPOINT_FILE, checkpoint_state, load_checkpoint


@dataclass(frozen=True)
class TrialSettings:
    """System settings every trial shares; kept out of `config`, which is searched."""

    max_epochs: int
    seed: int
    threads: int
    loss: str = "last"  # models.train.STEP_LOSSES
    metric: str = m.VAL_ACC  # the primary objective, kept with each checkpoint


@dataclass(frozen=True)
class TrialData:
    """What a trial trains and selects on. The test split never travels to trials."""

    pool: Split
    folds: tuple[FoldIndex, ...]
    classes: int
    scaling: Scaling

    @classmethod
    def of(cls, data: Dataset) -> TrialData:
        return cls(data.pool, data.folds, len(data.classes), data.scaling)

    def fold_runs(self, config: dict, seed: int, device: torch.device) -> list[Fold]:
        """One model, optimizer and pair of splits per fold, initialised from `seed`."""
        runs = []
        for k, (train_index, val_index) in enumerate(self.folds):
            train = self.pool[train_index]
            shape = self.scaling.shape_for(train, self.classes)
            model, optimizer = build(config, shape, fold_seed(seed, k), device)
            runs.append(
                Fold(model, optimizer, train.tensors(device), self.pool[val_index].tensors(device))
            )
        return runs


def trial_device() -> torch.device:
    """CUDA when Ray gave this task or trial a GPU and CUDA can use it, else the CPU.

    Asked of Ray, not only of torch: a CPU trial on a GPU node must not take a GPU it was
    not given. A GPU share on a node without CUDA (a logical GPU, a driver missing)
    trains on the CPU, and the trial's reports say so.
    """
    if ray.is_initialized() and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def epoch_report(val: Evaluation) -> dict:
    """One epoch's validation figures, under their metric names."""
    return {
        m.VAL_LOSS: val.loss,
        m.VAL_ACC: val.acc,
        m.VAL_ACC_BY_STEP: val.acc_by_step,
        m.VAL_ACC_BY_SHARE: val.acc_by_share,
        m.VAL_AREA: val.area,
        m.VAL_STEPS_TO_50: val.first_step_reaching(0.5),
        m.VAL_STEPS_TO_90: val.first_step_reaching(0.9),
        m.VAL_HM: val.early.hm,
        m.VAL_EARLY_ACC: val.early.accuracy,
        m.VAL_EARLINESS: val.early.earliness,
        m.VAL_THRESHOLD: val.early.threshold,
    }


def train_lstm(config: dict, *, data: TrialData, settings: TrialSettings) -> None:
    torch.set_num_threads(settings.threads)
    device = trial_device()
    folds = data.fold_runs(config, settings.seed, device)

    first_epoch, spent = 1, 0.0
    if (checkpoint := tune.get_checkpoint()) is not None:  # the latest epoch's
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / CHECKPOINT_FILE, device)
        for fold, model, optimizer in zip(
            folds, state["models"], state["optimizers"], strict=True
        ):
            fold.model.load_state_dict(model)
            fold.optimizer.load_state_dict(optimizer)
        first_epoch = state[m.EPOCH] + 1
        spent = state[m.TRAIN_SECONDS]

    node = ray.get_runtime_context().get_node_id()
    epochs = fit(
        folds,
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
            m.PARAM_COUNT: folds[0].model.parameter_count,
        }
        if result.diverged:
            # Divergence ends the trial. Zero figures tell TPE and ASHA this region is
            # bad; analysis reads the flag and skips the trial.
            zero = {m.VAL_ACC: 0.0, m.VAL_AREA: 0.0, m.VAL_HM: 0.0, m.RANK_SCORE: 0.0}
            tune.report({**report, **zero, m.DIVERGED: True})
            return
        report.update(epoch_report(result.val))
        report.update(
            {
                m.RANK_SCORE: m.rank_score(report[settings.metric], result.val.loss),
                m.EPOCH_SECONDS: result.seconds,
                m.DIVERGED: False,
            }
        )
        with tempfile.TemporaryDirectory() as folder:
            state = checkpoint_state(
                [f.model for f in folds],
                [f.optimizer for f in folds],
                result.epoch,
                report[settings.metric],
                spent,
            )
            torch.save(state, Path(folder) / CHECKPOINT_FILE)
            # report() copies the folder into the run's storage before returning.
            try:
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
            except (OSError, RuntimeError) as exc:
                # The run folder's disk (full, read-only, gone), not the trial: the driver
                # stops the search before this counts as its failure (search.faults).
                if (cause := disk_fault_cause(exc)) is None:
                    raise
                raise DiskFault(cause) from exc
