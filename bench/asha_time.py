"""Benchmark 12: ASHA on epochs against ASHA on training seconds (`--asha-time`).

The same default-size search (benchmark 7's: 50 trials, 12-epoch cap) with ASHA's rungs
counted in epochs, then in training seconds, per seed, in one run. Each winner (`best/`)
is scored on MNIST's t10k digits, as in benchmark 7. What it shows: the wall time, its
spread over seeds, where the trial-seconds went (networks of one layer or deeper), and
what the winner is worth. The issue's rule: keep the default that wins on wall time and on
the winner's accuracy.

A seed takes 15-30 minutes on 2 cores, so `merge` lets each run add its seeds:
`python -m bench --scale full --only asha_time --seeds N`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    BenchConfig,
    Searches,
    default_asha_time,
    fmt,
    goal,
    has_t10k,
    load_t10k,
    merge_seeds,
    search_sizes,
    seeds_held,
    stat,
    summary,
    table,
)
from bench.efficiency import describe
from bench.winner import judge_best, judged_row, judged_variants
from search.run_folder import TRIALS_CSV, read_trials

TITLE = "12. ASHA on epochs or on training seconds"
AXES = ("epochs", "seconds")
MEASURES = ("wall_s", "selected_t10k", "honesty_gap_pts", "epochs", "deep_share", "core_use")
# The winner on seconds may cost this much t10k accuracy and still win on a faster search:
# less than the 0.3 points of benchmark 7's regret goal, two-thirds of 1 t10k digit in 200.
ACCURACY_TOLERANCE_PTS = 0.3


def run(c: BenchConfig, searches: Searches) -> dict | None:
    if not has_t10k(c, TITLE):
        return None
    epochs = c.winner_max_epochs or c.max_epochs
    date = datetime.now(UTC).date().isoformat()
    axes = {axis: {"asha_time": axis} for axis in AXES}
    rows = [
        seed_row(seed, axis, r, judged, date)
        for seed, axis, r, judged in judged_variants(c, searches, "asha_time", axes)
    ]
    # Both axes run by name here: the CLI's default is no size of this benchmark.
    return summarise(rows, search_sizes(c, epochs, ours_default=False))


def measure(t10k_dir: str, run_dir: str) -> dict:
    """In a child process: the winner scored on t10k (as benchmark 7 scores it), and the
    trial-seconds spent on networks deeper than one layer."""
    judged = judge_best(Path(run_dir), load_t10k(t10k_dir))
    trials = read_trials(Path(run_dir) / TRIALS_CSV)
    deep = trials.loc[trials["num_layers"] > 1, "seconds"].sum()
    return {
        "t10k": judged["t10k"],
        "reported": judged["reported"],
        "deep_share": float(deep / trials["seconds"].sum()),
    }


def seed_row(seed: int, axis: str, r: dict, judged: dict, date: str) -> dict:
    return (
        {"seed": seed, "asha_time": axis, "date": date}
        | judged_row(r, judged)
        | {
            "deep_share": judged["deep_share"],
            "unit_s": r.get("asha_unit_s"),
        }
    )


def merge(old: dict, new: dict) -> dict:
    return merge_seeds(old, new, summarise)


def summarise(rows: list[dict], sizes: dict) -> dict:
    rows = sorted(rows, key=lambda r: (r["seed"], AXES.index(r["asha_time"])))
    seeds = sorted({r["seed"] for r in rows})
    of = {a: {r["seed"]: r for r in rows if r["asha_time"] == a} for a in AXES}
    by = {a: {k: summary([of[a][n][k] for n in seeds]) for k in MEASURES} for a in AXES}
    pairs = [(of["epochs"][n], of["seconds"][n]) for n in seeds]
    ratio = summary([sec["wall_s"] / ep["wall_s"] for ep, sec in pairs])
    gain = summary([100 * (sec["selected_t10k"] - ep["selected_t10k"]) for ep, sec in pairs])
    spread = {a: max(by[a]["wall_s"]["values"]) / min(by[a]["wall_s"]["values"]) for a in AXES}
    return {
        "sizes": sizes | {"seeds": seeds},
        "per_seed": rows,
        "by_axis": by,
        "wall_ratio": ratio,
        "t10k_gain_pts": gain,
        "spread": spread,
        "goals": goals(by, ratio, gain, spread, len(seeds)),
    }


MIN_SEEDS = 3  # one search is one sample: its wall time has varied 3x between runs


def goals(by: dict, ratio: dict, gain: dict, spread: dict, seeds: int) -> list[dict]:
    # Seconds wins if it is faster and its winner holds up on t10k; else epochs does.
    faster = ratio["median"] < 1
    holds = gain["median"] >= -ACCURACY_TOLERANCE_PTS
    wins = "seconds" if faster and holds else "epochs"
    decided = seeds >= MIN_SEEDS  # below that, "n/a": too few samples to decide
    return [
        goal(
            "the default --asha-time is the one that wins: seconds wins if it is faster and "
            f"its winner's t10k accuracy is within {ACCURACY_TOLERANCE_PTS} pts of epochs' "
            "(medians)",
            f"seconds / epochs wall time {stat(ratio, '.2f')}; t10k seconds minus epochs "
            f"{stat(gain, '+.2f')} pts: {wins} wins, the default is {default_asha_time()}"
            + ("" if decided else f" ({seeds} of {MIN_SEEDS} seeds)"),
            wins == default_asha_time() if decided else None,
        ),
        goal(
            "slowest seed <= 1.5x the fastest, per axis",
            "; ".join(f"{a} {spread[a]:.2f}x" for a in AXES)
            + ("" if decided else f" ({seeds} of {MIN_SEEDS} seeds)"),
            all(x <= 1.5 for x in spread.values()) if decided else None,
        ),
    ]


def render(r: dict) -> str:
    s, by = r["sizes"], r["by_axis"]
    axes = table(
        [
            {
                "ASHA counts": axis,
                "wall s": stat(b["wall_s"], ".0f"),
                "slowest / fastest seed": f"{r['spread'][axis]:.2f}x",
                "t10k acc (best/)": stat(b["selected_t10k"], ".4f"),
                "honesty gap (pts)": stat(b["honesty_gap_pts"], ".2f"),
                "epochs trained": stat(b["epochs"], ".0f"),
                "trial-seconds on 2+ layers": stat(b["deep_share"], ".0f", 100) + " %",
                "core use": stat(b["core_use"], ".0f", 100) + " %",
            }
            for axis, b in by.items()
        ]
    )
    seeds = table(
        [
            {
                "seed": p["seed"],
                "ASHA counts": p["asha_time"],
                "measured": p["date"],
                "unit s": fmt(p["unit_s"], ".2f", ""),
                "wall s": f"{p['wall_s']:.0f}",
                "t10k acc": f"{p['selected_t10k']:.4f}",
                "reported": f"{p['reported_acc']:.4f}",
                "epochs": p["epochs"],
                "2+ layers": f"{100 * p['deep_share']:.0f}%",
                "selected config": describe(p["best_config"]),
            }
            for p in r["per_seed"]
        ]
    )
    return "\n\n".join(
        [
            f"{seeds_held(s['seeds'])} {s['trials']} trials, {s['max_epochs']}-epoch "
            f"cap, {s['dataset']}, {s['cpus']} CPUs, our search with `--asha-time epochs` "
            "and `--asha-time seconds` (rungs in units of one epoch of the tutorial's "
            f"network, timed before the search: `unit s`; the default is {default_asha_time()}), "
            "in the same run. "
            "Each `best/` is scored on MNIST's t10k digits. Medians [min–max] over seeds.",
            axes,
            f"Seconds / epochs, wall time per seed: {stat(r['wall_ratio'], '.2f')}; t10k "
            f"accuracy of the winner, seconds minus epochs: {stat(r['t10k_gain_pts'], '+.2f')} "
            "points.",
            "<details><summary>per seed</summary>\n\n" + seeds + "\n\n</details>",
        ]
    )
