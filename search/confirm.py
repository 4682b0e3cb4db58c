"""Confirm the winner: retrain the best few configurations on other folds, pick by the mean.

The search's "best" is the maximum of many noisy figures (about 50 trials x up to 12
epochs, each judged on a few hundred validation digits), so it flatters its winner and
its ranking of close configurations is partly luck. Here each of the top k
configurations trains again, from a fresh initialisation, for as many epochs as gave its
best figure, on each of a few folds of the training pool: different training digits,
and validation digits it was never selected on. The confirmed accuracy is the share of
all those validation digits it classified right after its last epoch (no choice of epoch
here, so nothing to flatter), with a 95% Wilson interval; the confirmed area (mean
accuracy over rows 1-28) is the mean over those digits of the share of rows each was
read right after, with a normal 95% interval. The winner is the best by the run's
primary objective.

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

from models.train import build, fit, predict_proba
from search import metrics as m
from search.data import Dataset, Split, confirmation_folds
from search.run_folder import CONFIRMED_COLUMNS, ranked
from search.space import PARAMS
from search.trainable import trial_device


@dataclass(frozen=True)
class FoldResult:
    correct: int
    total: int
    busy_seconds: float  # training and evaluating, summed over its epochs
    # Per held-out digit, the share of its 28 rows after which it was read right.
    row_shares: list[float] = field(default_factory=list)  # empty: diverged
    model: dict | None = None  # the fold's trained state_dict, on the CPU (None: diverged)


@dataclass(frozen=True)
class Confirmation:
    table: pd.DataFrame  # the trials table, CONFIRMED_COLUMNS filled for the confirmed
    models: dict[str, list[dict]]  # trial id -> its fold models' state_dicts
    busy_seconds: float  # all folds' training and evaluating (core-seconds at 1 CPU each)


def train_on_fold(
    config: dict,
    epochs: int,
    pool: Split,
    held: torch.Tensor,
    seed: int,
    threads: int,
    loss: str = "last",
) -> FoldResult:
    """Train `config` for `epochs` with `loss` on the pool minus `held`, count it right
    on `held`."""
    torch.set_num_threads(threads)
    device = trial_device()
    keep = torch.ones(len(pool), dtype=torch.bool)
    keep[held] = False
    train, val = pool[keep].tensors(device), pool[held].tensors(device)
    model, optimizer = build(config, seed, device)
    epochs_run = list(
        fit(
            model,
            optimizer,
            train,
            val,
            batch_size=int(config["batch_size"]),
            epochs=epochs,
            seed=seed,
            loss=loss,
        )
    )
    total, last = len(held), epochs_run[-1]
    busy = sum(epoch.seconds for epoch in epochs_run)
    if last.diverged:
        return FoldResult(0, total, busy)
    right = predict_proba(model, val[0]).argmax(-1) == val[1][:, None]  # (N, T)
    shares = right.float().mean(1).tolist()  # (N,)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return FoldResult(round(last.val.acc * total), total, busy, shares, state)


def confirm(
    table: pd.DataFrame,
    data: Dataset,
    *,
    top: int,
    folds: int,
    seed: int,
    cpus: float,
    gpus: float,
    metric: str = m.VAL_ACC,
    loss: str = "last",
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
    pool, held = confirmation_folds(data, folds, seed)
    pool_ref = ray.put(pool)
    task = ray.remote(train_on_fold).options(num_cpus=cpus, num_gpus=gpus)
    threads = max(1, int(cpus))
    jobs = {
        (row["trial_id"], fold): task.remote(
            {k: row[k] for k in PARAMS},
            int(row["best_epoch"]),
            pool_ref,
            held[fold],
            seed + 1000 * (fold + 1),  # a fresh initialisation and shuffle per fold
            threads,
            loss,
        )
        for _, row in best.iterrows()
        for fold in range(folds)
    }
    results = dict(zip(jobs, ray.get(list(jobs.values())), strict=True))
    rows, models = [], {}
    for trial_id in best["trial_id"]:
        per_fold = [results[(trial_id, fold)] for fold in range(folds)]
        rows.append({"trial_id": trial_id, **confirmed_figures(per_fold)})
        models[trial_id] = [f.model for f in per_fold if f.model is not None]
    confirmed = pd.DataFrame(rows, columns=["trial_id", *CONFIRMED_COLUMNS]).set_index("trial_id")
    # Filled in place, so the trials table keeps its columns in their order.
    table = table.assign(**{c: table["trial_id"].map(confirmed[c]) for c in CONFIRMED_COLUMNS})
    return Confirmation(table, models, sum(r.busy_seconds for r in results.values()))


def confirmed_figures(per_fold: list[FoldResult]) -> dict:
    """Pooled accuracy over the folds' validation digits, its 95% Wilson interval, and each
    fold's own accuracy."""
    correct = sum(f.correct for f in per_fold)
    total = sum(f.total for f in per_fold)
    interval = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    # A diverged fold read no digit right at any row.
    shares = np.concatenate([f.row_shares or np.zeros(f.total) for f in per_fold])
    area = float(shares.mean())
    half = float(norm.ppf(0.975) * shares.std(ddof=1) / np.sqrt(len(shares)))
    return {
        m.CONFIRMED_ACC: correct / total,
        m.CONFIRMED_LOW: float(interval.low),
        m.CONFIRMED_HIGH: float(interval.high),
        m.CONFIRMED_FOLD_ACCS: json.dumps([f.correct / f.total for f in per_fold]),
        m.CONFIRMED_AUC: area,
        m.CONFIRMED_AUC_LOW: max(0.0, area - half),
        m.CONFIRMED_AUC_HIGH: min(1.0, area + half),
    }
