"""Benchmark 1: our search against plain Optuna and the stock Ray Tune script, on the same
trials, epoch cap, data and seeds: wall time, time to a target accuracy, and the best
accuracy reached in all and by the time our search has finished."""

from __future__ import annotations

import os

from bench.common import BenchConfig, Searches, fmt, goal, stat, summary, table
from bench.systems import LABELS, SYSTEMS
from search.space import PARAMS, format_param

TITLE = "1. Search efficiency"
# Each system's figures per seed, summarised over seeds in `by_system`.
MEASURES = (
    "wall_s",
    "time_to_target_s",
    "best_val_acc",
    "best_val_acc_at_ours_wall",
    "test_acc",
    "epochs",
)


def time_to(events: list[list[float]], target: float) -> float | None:
    """Seconds until a trial first reported val_acc >= target (None: never)."""
    return next((t for t, acc in events if acc >= target), None)


def best_by(events: list[list[float]], seconds: float) -> float:
    """Best val_acc reported by `seconds` after the start (0 if nothing yet)."""
    return max((acc for t, acc in events if t <= seconds), default=0.0)


def speedup(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None or ours == 0 else theirs / ours


def gain_pp(ours: float, theirs: float) -> float:
    return 100 * (ours - theirs)


def run(c: BenchConfig, searches: Searches) -> dict:
    per_seed = []
    for seed in c.seeds:
        runs = {system: searches.get(system, seed) for system in SYSTEMS}
        horizon = runs["ours"]["wall_s"]  # "equal wall time": when our search has finished
        per_seed += [
            {
                "seed": seed,
                "system": system,
                "wall_s": r["wall_s"],
                "time_to_target_s": time_to(r["events"], c.target_acc),
                "best_val_acc": r["best_val_acc"],
                "best_val_acc_at_ours_wall": best_by(r["events"], horizon),
                "test_acc": r["test_acc"],
                "epochs": r["epochs"],
                "best_config": r["best_config"],
                # (seconds, val_acc) of every evaluated epoch: the raw figures behind
                # the time-to-target and equal-time columns.
                "events": [[round(t, 1), acc] for t, acc in r["events"]],
            }
            for system, r in runs.items()
        ]
    rows = {s: [row for row in per_seed if row["system"] == s] for s in SYSTEMS}  # seed order
    by_system = {s: {k: summary([row[k] for row in rows[s]]) for k in MEASURES} for s in SYSTEMS}

    def versus(system: str, key: str, compare) -> dict:
        """`compare(ours, theirs)` per seed, summarised."""
        pairs = zip(rows["ours"], rows[system], strict=True)
        return summary([compare(ours[key], theirs[key]) for ours, theirs in pairs])

    ratios = {
        s: {
            "wall_speedup": versus(s, "wall_s", speedup),
            "time_to_target_speedup": versus(s, "time_to_target_s", speedup),
            "best_val_acc_gain_pp": versus(s, "best_val_acc", gain_pp),
            "best_val_acc_gain_at_ours_wall_pp": versus(s, "best_val_acc_at_ours_wall", gain_pp),
            "test_acc_gain_pp": versus(s, "test_acc", gain_pp),
        }
        for s in ("optuna", "stock")
    }
    best = {s: by_system[s]["best_val_acc"]["median"] for s in SYSTEMS}
    vs_optuna = ratios["optuna"]["wall_speedup"]["median"]
    vs_stock = ratios["stock"]["wall_speedup"]["median"]
    goals = [
        goal(
            "whole search in <= 1/3 of plain Optuna's wall time",
            f"plain Optuna / ours = {vs_optuna:.2f}x",
            vs_optuna >= 3,
        ),
        goal(
            "ahead of the stock Ray Tune script",
            f"stock Ray Tune / ours = {vs_stock:.2f}x",
            vs_stock > 1,
        ),
        goal(
            "best validation accuracy no lower than either baseline's (medians)",
            f"ours {best['ours']:.4f}, Optuna {best['optuna']:.4f}, stock {best['stock']:.4f}",
            best["ours"] >= max(best["optuna"], best["stock"]),
        ),
    ]
    sizes = {k: getattr(c, k) for k in ("seeds", "trials", "max_epochs", "dataset", "target_acc")}
    return {
        "sizes": sizes | {"cpus": os.cpu_count()},
        "per_seed": per_seed,
        "by_system": by_system,
        "ratios": ratios,
        "goals": goals,
    }


def render(r: dict) -> str:
    s = r["sizes"]
    systems = table(
        [
            {
                "system": LABELS[system],
                "wall s": stat(b["wall_s"], ".0f"),
                f"s to val_acc ≥ {s['target_acc']}": stat(
                    b["time_to_target_s"], ".0f", none="not reached"
                ),
                "best val_acc": stat(b["best_val_acc"], ".4f"),
                "best val_acc when ours ends": stat(b["best_val_acc_at_ours_wall"], ".4f"),
                "test acc (selected)": stat(b["test_acc"], ".4f"),
                "epochs": stat(b["epochs"], ".0f"),
            }
            for system, b in r["by_system"].items()
        ]
    )
    ratios = table(
        [
            {
                "ours versus": LABELS[system],
                "wall speed-up": stat(q["wall_speedup"], ".2f") + "x",
                "time-to-target speed-up": stat(q["time_to_target_speedup"], ".2f") + "x",
                "best val_acc gain (pts)": stat(q["best_val_acc_gain_pp"], "+.2f"),
                "gain when ours ends (pts)": stat(q["best_val_acc_gain_at_ours_wall_pp"], "+.2f"),
                "test acc gain (pts)": stat(q["test_acc_gain_pp"], "+.2f"),
            }
            for system, q in r["ratios"].items()
        ]
    )
    seeds = table(
        [
            {
                "seed": p["seed"],
                "system": LABELS[p["system"]],
                "wall s": fmt(p["wall_s"], ".0f"),
                "s to target": fmt(p["time_to_target_s"], ".0f", "—"),
                "best val_acc": fmt(p["best_val_acc"], ".4f"),
                "test acc": fmt(p["test_acc"], ".4f"),
                "best config": describe(p["best_config"]),
            }
            for p in r["per_seed"]
        ]
    )
    return "\n\n".join(
        [
            f"{len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}), {s['trials']} trials, "
            f"{s['max_epochs']}-epoch cap, {s['dataset']}, {s['cpus']} CPUs. Medians "
            "[min–max] over seeds; wall time runs from before the data is loaded to after "
            "Ray has shut down. Ratios are per seed, then the median.",
            systems,
            ratios,
            "<details><summary>per seed</summary>\n\n" + seeds + "\n\n</details>",
        ]
    )


def describe(config: dict) -> str:
    """A configuration in one line, each value as `search.space.format_param` writes it."""
    p = {name: format_param(name, config.get(name)) for name in PARAMS}
    patch = f", patch {p['patch']}" if config.get("patch", 1) != 1 else ""
    return (
        f"{p['num_layers']}x{p['hidden_size']}, drop {p['dropout']}, fb {p['forget_bias']}, "
        f"lr {p['lr']}, batch {p['batch_size']}{patch}"
    )
