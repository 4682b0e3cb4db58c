"""Benchmark 4: the epochs ASHA saves and the accuracy it costs: our search as is, with
other reduction factors, and with stopping switched off; other settings are replayed on
the curves of the latter (`bench.replay`)."""

from __future__ import annotations

import os

from bench.common import BenchConfig, Searches, fmt, goal, stat, summary, table
from bench.replay import Curve, replay_settings, rung_epochs
from search.config import SearchConfig

TITLE = "4. Early stopping"


def run(c: BenchConfig, searches: Searches) -> dict:
    default_rf = SearchConfig.reduction_factor  # the flag's default
    rows = []
    for seed in c.seeds:
        full = searches.get("ours", seed, grace_epochs=c.max_epochs)  # ASHA never stops
        for rf in [default_rf, *c.alt_reduction_factors]:
            # None: search.run's default, the very search benchmark 1 ran
            asha = searches.get("ours", seed, reduction_factor=None if rf == default_rf else rf)
            rows.append(
                {
                    "seed": seed,
                    "reduction_factor": rf,
                    "default": rf == default_rf,
                    "epochs_asha": asha["epochs"],
                    "epochs_full": full["epochs"],
                    "epoch_ratio": asha["epochs"] / full["epochs"],
                    "rungs": rung_pass_rates(asha["trial_epochs"], 1, c.max_epochs, rf),
                    "best_val_acc_asha": asha["best_val_acc"],
                    "best_val_acc_full": full["best_val_acc"],
                    "gap_pp": 100 * (full["best_val_acc"] - asha["best_val_acc"]),
                    # The best validation figure is a maximum over every evaluated epoch,
                    # so the run that evaluates more epochs gets more draws of the
                    # 500-digit noise; the test accuracy of each run's selected checkpoint
                    # has no such bias.
                    "test_acc_asha": asha["test_acc"],
                    "test_acc_full": full["test_acc"],
                    "test_gap_pp": 100 * (full["test_acc"] - asha["test_acc"]),
                    "wall_asha_s": asha["wall_s"],
                    "wall_full_s": full["wall_s"],
                }
            )
    # Other settings, replayed on the curves of the searches that ran every trial to the cap.
    replayed = [
        {"seed": seed, **row}
        for seed in c.seeds
        for row in replay_settings(
            [Curve(**x) for x in searches.get("ours", seed, grace_epochs=c.max_epochs)["curves"]],
            c.max_epochs,
            slots=os.cpu_count() or 1,
        )
    ]
    ours = [r for r in rows if r["default"]]
    ratio, gap, test_gap = (
        summary([r[k] for r in ours]) for k in ("epoch_ratio", "gap_pp", "test_gap_pp")
    )
    return {
        "sizes": {"seeds": c.seeds, "trials": c.trials, "max_epochs": c.max_epochs},
        "rows": rows,
        "epoch_ratio": ratio,
        "gap_pp": gap,
        "test_gap_pp": test_gap,
        "replay": replayed,
        "goals": [
            goal(
                "ASHA uses <= 1/3 of the epochs of running every trial to the cap",
                f"{ratio['median']:.2f} of the epochs (reduction factor {default_rf:g})",
                ratio["median"] <= 1 / 3,
            ),
            goal(
                "best validation accuracy within 0.3 points of the full runs",
                f"{gap['median']:+.2f} points below (median; negative: ASHA better)",
                gap["median"] <= 0.3,
            ),
        ],
    }


def rung_pass_rates(trial_epochs: list[int], grace: int, max_epochs: int, rf: float) -> list[dict]:
    """For each of ASHA's rungs below the cap: how many trials reached it and what share of
    them went on training. Synchronous successive halving would pass 1/rf; an asynchronous
    rung compares each trial only with those recorded before it, so a searcher that
    improves over time passes more."""
    rungs = []
    for epoch in rung_epochs(grace, max_epochs, rf):
        reached = sum(e >= epoch for e in trial_epochs)
        passed = sum(e > epoch for e in trial_epochs)
        share = passed / reached if reached else None
        rungs.append({"epoch": epoch, "reached": reached, "passed": passed, "share": share})
    return rungs


def render(r: dict) -> str:
    rows = [
        {
            "seed": row["seed"],
            "rf": f"{row['reduction_factor']:g}" + ("" if row["default"] else " (alternative)"),
            "epochs (ASHA)": row["epochs_asha"],
            "epochs (all to cap)": row["epochs_full"],
            "ratio": f"{row['epoch_ratio']:.2f}",
            "rungs": ", ".join(
                f"{x['passed']}/{x['reached']} past epoch {x['epoch']}" for x in row["rungs"]
            ),
            "best val_acc (ASHA)": f"{row['best_val_acc_asha']:.4f}",
            "best val_acc (all)": f"{row['best_val_acc_full']:.4f}",
            "gap (pts)": f"{row['gap_pp']:+.2f}",
            "test acc (ASHA)": f"{row['test_acc_asha']:.4f}",
            "test acc (all)": f"{row['test_acc_full']:.4f}",
            "wall s (ASHA)": fmt(row["wall_asha_s"], ".0f"),
            "wall s (all)": fmt(row["wall_full_s"], ".0f"),
        }
        for row in r["rows"]
    ]
    settings: dict[tuple, list[dict]] = {}  # (axis, grace, rf): its replay per seed
    for x in r["replay"]:
        # Entries measured before ASHA on seconds was replayed hold epochs only.
        key = (x.get("time_axis", "epochs"), x["grace"], x["reduction_factor"])
        settings.setdefault(key, []).append(x)
    replayed = [
        {
            "ASHA's time": axis,
            "grace": grace if axis == "epochs" else f"{grace} tutorial epoch(s) of seconds",
            "rf": f"{rf:g}",
            "epoch ratio": stat(summary([x["epoch_ratio"] for x in mine]), ".2f"),
            "simulated wall ratio": stat(summary([x["wall_ratio"] for x in mine]), ".2f"),
            "best val_acc gap (pts)": stat(summary([x["gap_pp"] for x in mine]), "+.2f"),
        }
        for (axis, grace, rf), mine in sorted(settings.items())
    ]
    return "\n\n".join(
        [
            "Our search as is (ASHA, grace 1 epoch), with other ASHA reduction factors, and "
            "with `--grace-epochs` equal to `--max-epochs` (ASHA then never stops a trial); "
            "same trials and seeds. Rungs: of the trials that reached a rung's epoch, how "
            "many trained on (a synchronous successive halving would pass 1 in rf).",
            table(rows),
            f"Default reduction factor: median epoch ratio {stat(r['epoch_ratio'], '.2f')}, "
            f"best validation accuracy gap {stat(r['gap_pp'], '+.2f')} points, test accuracy "
            f"gap of the selected checkpoints {stat(r['test_gap_pp'], '+.2f')} points "
            "(positive: running every trial to the cap did better).",
            "Replayed (`bench/replay.py`): the all-to-cap searches' curves, in their trials' "
            "start order, through Ray's ASHA rung rule with other settings, on as many slots "
            "as CPUs; ASHA's time is epochs (the search's) or training seconds, as "
            "`--asha-time seconds` counts them. It does not model how TPE's "
            "proposals would change; medians [min–max] over seeds.",
            table(replayed),
        ]
    )
