"""Replays ASHA on learning curves already measured, to compare its settings for free.

A search with early stopping switched off records every trial's full curve. Feeding those
curves, in the order the trials started, through Ray's own ASHA rung rule shows how many
epochs each (reduction factor, grace period) would have spent and the best validation
accuracy it would still have seen. What a replay cannot show is how the searcher's later
proposals would have changed: TPE saw full-length results here, not the rung-stopped ones
a real ASHA search feeds it. Benchmark 4's real searches check the setting in use.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import deque
from dataclasses import dataclass
from types import SimpleNamespace

from ray.tune.schedulers.async_hyperband import _Bracket
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from search.tuner import SECONDS_CEILING_UNITS


@dataclass(frozen=True)
class Curve:
    """One trial's validation accuracy and seconds for epochs 1..n (n: the cap, or the
    epoch where the trial diverged)."""

    val_acc: list[float]
    seconds: list[float]


def rung_epochs(grace: int, max_epochs: int, reduction_factor: float) -> list[int]:
    """The epochs at which Ray's ASHA decides (its rungs below the cap), in order."""
    bracket = _Bracket(min_t=grace, max_t=max_epochs, reduction_factor=reduction_factor, s=0)
    # A rung at a fractional epoch (rf 2.5: 2.5, 6.25) acts at the first epoch past it.
    milestones = sorted(math.ceil(milestone) for milestone, _ in bracket._rungs)
    return [epoch for epoch in milestones if epoch < max_epochs]


TIME_AXES = ("epochs", "seconds")


def replay(
    curves: list[Curve],
    reduction_factor: float,
    grace: int,
    max_epochs: int,
    slots: int,
    time_axis: str = "epochs",
    unit: float | None = None,
) -> dict:
    """Epochs, best val_acc seen and simulated wall time of ASHA over `curves`.

    Trials start in list order as slots free up, as Tune starts them; each epoch's result
    goes through the rung rule of Ray's ASHA (`_Bracket`, the class ASHAScheduler uses)
    and a stopped or finished trial frees its slot for the next one.

    `time_axis` "seconds" is `--asha-time seconds`: ASHA on a trial's training seconds
    so far, its rungs `grace` units apart and rf times further each (`search.tuner.asha`).
    The unit is one epoch of the tutorial's network: `unit`, else the first curve's median
    epoch (the searches start with the tutorial's configuration). Trials still end at
    `max_epochs`.
    """
    if time_axis == "seconds":
        unit = unit or statistics.median(curves[0].seconds)
        bracket = _Bracket(
            min_t=grace * unit,
            max_t=max_epochs * SECONDS_CEILING_UNITS * unit,
            reduction_factor=reduction_factor,
            s=0,
        )
    else:
        bracket = _Bracket(min_t=grace, max_t=max_epochs, reduction_factor=reduction_factor, s=0)
    spent = [0.0] * len(curves)  # each trial's training seconds so far
    waiting = deque(range(len(curves)))
    events: list[tuple[float, int, int]] = []  # (time the epoch ends, trial, epoch)

    def start(now: float) -> None:
        if waiting:
            trial = waiting.popleft()
            heapq.heappush(events, (now + curves[trial].seconds[0], trial, 1))

    for _ in range(slots):
        start(0.0)
    epochs, best, now = 0, 0.0, 0.0
    while events:
        now, trial, epoch = heapq.heappop(events)
        acc = curves[trial].val_acc[epoch - 1]
        spent[trial] += curves[trial].seconds[epoch - 1]
        epochs, best = epochs + 1, max(best, acc)
        at = spent[trial] if time_axis == "seconds" else epoch
        action = bracket.on_result(SimpleNamespace(trial_id=str(trial)), at, acc)
        # A curve shorter than the cap is a trial that diverged or failed there.
        if action == TrialScheduler.CONTINUE and epoch < len(curves[trial].val_acc):
            heapq.heappush(events, (now + curves[trial].seconds[epoch], trial, epoch + 1))
        else:
            start(now)
    return {"epochs": epochs, "best_val_acc": best, "wall_s": now}


def replay_settings(
    curves: list[Curve],
    max_epochs: int,
    slots: int,
    reduction_factors: tuple[float, ...] = (2, 3, 4, 5),
    graces: tuple[int, ...] = (1, 2),
) -> list[dict]:
    """`replay` for every setting, relative to running every trial to the cap."""
    everything = replay(curves, 2, max_epochs, max_epochs, slots)  # grace = cap: no stops
    rows = []
    for time_axis in TIME_AXES:
        for grace in graces:
            for rf in reduction_factors:
                r = replay(curves, rf, grace, max_epochs, slots, time_axis)
                rows.append(
                    {
                        "time_axis": time_axis,
                        "reduction_factor": rf,
                        "grace": grace,
                        "epoch_ratio": r["epochs"] / everything["epochs"],
                        "wall_ratio": r["wall_s"] / everything["wall_s"],
                        "gap_pp": 100 * (everything["best_val_acc"] - r["best_val_acc"]),
                    }
                )
    return rows


def sequential_curves(r: dict, max_epochs: int) -> list[Curve] | None:
    """A plain Optuna search's curves: its own (`curves`), else cut from its epoch events,
    which a search without pruning or divergence reports one trial after another, each
    `max_epochs` long (seconds: from one event to the next). None where they cannot be."""
    if "curves" in r:
        return [Curve(c["val_acc"], c["seconds"]) for c in r["curves"]]
    events = sorted(r["events"])
    if len(events) != r["trials"] * max_epochs:
        return None
    times = [0.0] + [t for t, _ in events]
    seconds = [b - a for a, b in zip(times, times[1:], strict=False)]
    seconds[0] = seconds[1]  # the first event also carries the process's start-up
    return [
        Curve([acc for _, acc in events[i : i + max_epochs]], seconds[i : i + max_epochs])
        for i in range(0, len(events), max_epochs)
    ]
