"""Confirm the winner: retrain the best few configurations on other folds, pick by the mean.

The search's "best" is the maximum of many noisy figures (about 50 trials x up to 12
epochs, each judged on a few hundred validation series), so it flatters its winner and
its ranking of close configurations is partly luck. Here each of the top k
configurations trains again, from a fresh initialisation, for as many epochs as gave its
best figure, on each of a few folds of the training pool: different training series,
and validation series it was never selected on. The confirmed accuracy is the share of
all those validation series it classified right after its last epoch (no choice of epoch
here, so nothing to flatter), with a 95% Wilson interval; the confirmed area (the share
of each series' steps read right) has a normal 95% interval; the confirmed harmonic mean
applies the stopping rule the search chose for the trial (its threshold) to the folds'
series, with a bootstrap 95% interval. The winner is the best by the run's primary
objective.

The retraining runs as Ray tasks, side by side on the cluster's CPUs (or GPUs), the
longest first, so the last to finish are short ones and no core idles long at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import ray
import torch
from scipy.stats import binomtest, norm

from models.early import StoppingRule, harmonic_mean
from models.lstm import steps_of
from models.train import fit, predict_proba, right_by_step
from search import metrics as m
from search.data import Dataset, FoldIndex, confirmation_folds
from search.run_folder import CONFIRMED_COLUMNS, ranked
from search.space import hyperparameters
from search.trainable import TrialData, trial_device

BOOTSTRAP = 2000  # resamples of the series behind the HM's interval


@dataclass(frozen=True)
class FoldResult:
    total: int
    busy_seconds: float  # training and evaluating, summed over its epochs
    # Per held-out series (empty: diverged): right after its last step; the share of its
    # steps read right; right under the stopping rule; the share read when it decided.
    right: list[bool] = field(default_factory=list)
    step_shares: list[float] = field(default_factory=list)
    early_right: list[bool] = field(default_factory=list)
    early_read: list[float] = field(default_factory=list)
    model: dict | None = None  # the fold's trained state_dict, on the CPU (None: diverged)

    @property
    def correct(self) -> int:
        return sum(self.right)


def train_on_fold(
    config: dict,
    epochs: int,
    data: TrialData,
    threshold: float,
    seed: int,
    threads: int,
    loss: str = "last",
    epoch_folds: int = 1,
) -> FoldResult:
    """Train `config` for `epochs` with `loss` on `data`'s one fold, measure it on the
    fold's validation series (the stopping rule: `threshold`). Its epochs are as long as
    the search's, whose `epoch_folds` folds shared an epoch's series."""
    torch.set_num_threads(threads)
    fold = data.fold_runs(config, seed, trial_device())[0]
    epochs_run = list(
        fit(
            [fold],
            batch_size=int(config["batch_size"]),
            epochs=epochs,
            seed=seed,
            loss=loss,
            epoch_folds=epoch_folds,
        )
    )
    total, last = len(fold.val), epochs_run[-1]
    busy = sum(epoch.seconds for epoch in epochs_run)
    if last.diverged:
        return FoldResult(total, busy)
    val, patch = fold.val, fold.model.config.patch
    probs = predict_proba(fold.model, val)  # (N, S, C)
    steps = steps_of(val.lengths, patch)
    rows = torch.arange(total, device=probs.device)
    right = probs[rows, steps - 1].argmax(-1) == val.labels
    by_step = right_by_step(probs, val.labels, steps)  # (N, S)
    own = torch.arange(probs.shape[1], device=probs.device)[None] < steps[:, None]
    classes, at = StoppingRule(threshold).decide(probs, steps)
    read = torch.minimum(at[0] * patch, val.lengths).double() / val.lengths.double()
    return FoldResult(
        total,
        busy,
        right.tolist(),
        ((by_step & own).sum(1).double() / steps.double()).tolist(),
        (classes[0] == val.labels).tolist(),
        read.tolist(),
        {k: v.cpu() for k, v in fold.model.state_dict().items()},
    )


def confirm(
    table: pd.DataFrame,
    data: Dataset,
    *,
    top: int,
    folds: int | None,
    seed: int,
    cpus: float,
    gpus: float,
    metric: str,
    loss: str,
) -> Confirmation:
    """The confirmed figures of the best `top` trials of `table` (the trials table, ranked
    by `metric`), and the models trained on the folds with `loss` (the winner's join its
    answer in best/).

    Runs on the connected Ray cluster. Fills CONFIRMED_COLUMNS; other rows keep NaN there.
    """
    best = ranked(table, metric).head(top)
    # Longest first: its epochs as the search timed them, times the epochs to retrain.
    cost = best["seconds"] / best["epochs"].clip(lower=1) * best["best_epoch"]
    best = best.assign(cost=cost.fillna(0)).sort_values("cost", ascending=False)
    held = confirmation_folds(data, folds, seed)
    fold_data = [ray.put(_one_fold(data, fold)) for fold in held]
    task = ray.remote(train_on_fold).options(num_cpus=cpus, num_gpus=gpus)
    threads = max(1, int(cpus))
    jobs = {
        (row["trial_id"], k): task.remote(
            hyperparameters(row.to_dict()),
            int(row["best_epoch"]),
            fold_data[k],
            float(row[m.VAL_THRESHOLD]),
            seed + 1000 * (k + 1),  # a fresh initialisation and shuffle per fold
            threads,
            loss,
            len(data.folds),
        )
        for _, row in best.iterrows()
        for k in range(len(held))
    }
    results = dict(zip(jobs, ray.get(list(jobs.values())), strict=True))
    rows, models = [], {}
    for trial_id in best["trial_id"]:
        per_fold = [results[(trial_id, k)] for k in range(len(held))]
        rows.append({"trial_id": trial_id, **confirmed_figures(per_fold, seed)})
        models[trial_id] = [f.model for f in per_fold if f.model is not None]
    confirmed = pd.DataFrame(rows, columns=["trial_id", *CONFIRMED_COLUMNS]).set_index("trial_id")
    # Filled in place, so the trials table keeps its columns in their order.
    table = table.assign(**{c: table["trial_id"].map(confirmed[c]) for c in CONFIRMED_COLUMNS})
    return Confirmation(table, models, sum(r.busy_seconds for r in results.values()))


@dataclass(frozen=True)
class Confirmation:
    table: pd.DataFrame  # the trials table, CONFIRMED_COLUMNS filled for the confirmed
    models: dict[str, list[dict]]  # trial id -> its fold models' state_dicts
    busy_seconds: float  # all folds' training and evaluating (core-seconds at 1 CPU each)


def _one_fold(data: Dataset, fold: FoldIndex) -> TrialData:
    return TrialData(data.pool, (fold,), len(data.classes), data.scaling)


def confirmed_figures(per_fold: list[FoldResult], seed: int = 0) -> dict:
    """Pooled figures over the folds' validation series, with their 95% intervals, and
    each fold's own accuracy. A diverged fold read no series right, and decided none."""
    correct = sum(f.correct for f in per_fold)
    total = sum(f.total for f in per_fold)
    interval = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    shares = np.concatenate([f.step_shares or np.zeros(f.total) for f in per_fold])
    area = float(shares.mean())
    half = float(norm.ppf(0.975) * shares.std(ddof=1) / np.sqrt(len(shares)))
    early_right = np.concatenate([f.early_right or np.zeros(f.total) for f in per_fold])
    early_read = np.concatenate([f.early_read or np.ones(f.total) for f in per_fold])
    hm = harmonic_mean(float(early_right.mean()), float(early_read.mean()))
    hm_low, hm_high = _bootstrap_hm(early_right, early_read, seed)
    return {
        m.CONFIRMED_ACC: correct / total,
        m.CONFIRMED_LOW: float(interval.low),
        m.CONFIRMED_HIGH: float(interval.high),
        m.CONFIRMED_FOLD_ACCS: json.dumps([f.correct / f.total for f in per_fold]),
        m.CONFIRMED_AREA: area,
        m.CONFIRMED_AREA_LOW: max(0.0, area - half),
        m.CONFIRMED_AREA_HIGH: min(1.0, area + half),
        m.CONFIRMED_HM: hm,
        m.CONFIRMED_HM_LOW: hm_low,
        m.CONFIRMED_HM_HIGH: hm_high,
        m.CONFIRMED_EARLY_ACC: float(early_right.mean()),
        m.CONFIRMED_EARLINESS: float(early_read.mean()),
    }


def _bootstrap_hm(right: np.ndarray, read: np.ndarray, seed: int) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of the HM over series resampled with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(right), size=(BOOTSTRAP, len(right)))
    acc, earliness = right[picks].mean(1), read[picks].mean(1)
    timeliness = 1.0 - earliness
    total = acc + timeliness
    hms = np.divide(2 * acc * timeliness, total, out=np.zeros_like(total), where=total > 0)
    low, high = np.percentile(hms, [2.5, 97.5])
    return float(low), float(high)
