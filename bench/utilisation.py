"""Benchmark 3: the share of a search's core-seconds spent training and evaluating, for the
searches of benchmark 1."""

from __future__ import annotations

from bench.common import BenchConfig, Searches, fmt, goal, stat, summary, table
from bench.systems import LABELS

TITLE = "3. Core utilisation"


def share(r: dict) -> float:
    """The share of a search's core-seconds (wall x CPUs) spent training and evaluating:
    its trials' `epoch_seconds`, and ours' confirmation's (recorded since 2026-11-30)."""
    return (r["busy_s"] + r.get("confirm_busy_s", 0.0)) / (r["wall_s"] * r["cpus"])


def run(c: BenchConfig, searches: Searches) -> dict:
    rows = []
    for seed in c.seeds:
        for system in ("ours", "stock"):
            r = searches.get(system, seed)
            core_s = r["wall_s"] * r["cpus"]
            row = {
                "seed": seed,
                "system": system,
                "busy_core_s": r["busy_s"] + r.get("confirm_busy_s", 0.0),
                "wall_s": r["wall_s"],
                "cpus": r["cpus"],
                "share": share(r),
            }
            if "fit_wall_s" in r:  # ours: `Tuner.fit` alone, as run.json times it
                row["fit_wall_s"] = r["fit_wall_s"]
                row["share_fit"] = r["busy_s"] / (r["fit_wall_s"] * r["cpus"])
            # Where the other core-seconds went: inside trials but outside training (setup,
            # reporting, checkpoints), and outside any trial or confirmation training (Ray
            # start, data loading in the driver, slots waiting for work).
            row["in_trial_not_training"] = (r["trial_s"] - r["busy_s"]) / core_s
            row["outside_trials"] = 1 - (r["trial_s"] + r.get("confirm_busy_s", 0.0)) / core_s
            rows.append(row)
    ours = summary([r["share"] for r in rows if r["system"] == "ours"])
    ours_fit = summary([r["share_fit"] for r in rows if r["system"] == "ours"])
    stock = summary([r["share"] for r in rows if r["system"] == "stock"])
    return {
        "sizes": {"seeds": c.seeds, "trials": c.trials, "max_epochs": c.max_epochs},
        "rows": rows,
        "ours": ours,
        "ours_fit": ours_fit,
        "stock": stock,
        "goals": [
            goal(
                ">= 85% of core-seconds inside training and evaluation",
                f"ours {100 * ours['median']:.0f}% of the whole search "
                f"({100 * ours_fit['median']:.0f}% of Tuner.fit alone); "
                f"stock Ray Tune {100 * stock['median']:.0f}%",
                ours["median"] >= 0.85,
            )
        ],
    }


def render(r: dict) -> str:
    rows = [
        {
            "seed": row["seed"],
            "system": LABELS[row["system"]],
            "busy core-s": fmt(row["busy_core_s"], ".0f"),
            "wall s": fmt(row["wall_s"], ".0f"),
            "CPUs": row["cpus"],
            "share of whole search": pct(row["share"]),
            "share of `Tuner.fit`": pct(row.get("share_fit")),
            "in trials, not training": pct(row.get("in_trial_not_training")),
            "outside any trial": pct(row.get("outside_trials")),
        }
        for row in r["rows"]
    ]
    return "\n\n".join(
        [
            "Core-seconds inside `train_epoch` + `evaluate` (the trials' own `epoch_seconds`, "
            "from each trial's `result.json`, and, where run.json records it, ours' "
            "confirmation's) over wall time x CPUs, for the searches of "
            "benchmark 1. Plain Optuna is left out: its one process runs torch on every "
            "core, so the ratio would only measure torch's threading.",
            table(rows),
            f"Median: ours {stat(r['ours'], '.0f', 100)}% of the whole search, "
            f"{stat(r['ours_fit'], '.0f', 100)}% of `Tuner.fit`; stock Ray Tune "
            f"{stat(r['stock'], '.0f', 100)}%.",
        ]
    )


def pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"
