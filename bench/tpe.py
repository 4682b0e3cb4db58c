"""Benchmark 14: TPE's settings for parallel trials, chosen by measurement.

The default search (benchmark 7's size: 50 trials, 12-epoch cap) per seed with TPE as
the search runs it (`search.searcher.TPE_SETTINGS`) and with one setting changed at a
time: `constant_liar` flipped, `multivariate` flipped, 10 or 20 random start-up trials
(whichever the search does not use). Each winner (`best/`) is scored on MNIST's t10k
digits, as in benchmark 7.

A variant beats the default only by more than one run's noise (the same command has
varied 3x in wall time and a point in accuracy): at least `MARGIN_PTS` higher on t10k
without costing `SLOWER` more wall time, or at least `FASTER` less wall time without
losing `MARGIN_PTS`; medians of the per-seed ratios and differences.

Four searches a seed took 12-13 minutes on 2 cores:
`python -m bench --scale full --only tpe --seeds N`, merged like benchmark 7.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    BenchConfig,
    Searches,
    goal,
    has_t10k,
    load_t10k,
    merge_seeds,
    ours_asha_time,
    search_sizes,
    seeds_held,
    stat,
    summary,
    table,
)
from bench.efficiency import describe
from bench.winner import judge_best, judged_row, judged_variants

TITLE = "14. TPE's settings for parallel trials"
MEASURES = ("wall_s", "selected_t10k", "honesty_gap_pts", "epochs", "core_use")
MARGIN_PTS = 0.3  # benchmark 12's tolerance: below it, two winners are one run's noise
SLOWER, FASTER = 1.2, 0.8  # wall-time ratios beyond one run's usual spread
MIN_SEEDS = 3
START_UPS = (10, 20)  # random start-up trials: Optuna's default, and twice that


def variants() -> dict[str, dict]:
    """The search's own settings ("default") and each changed alone: `constant_liar` and
    `multivariate` flipped, the start-up trials at the other of `START_UPS`."""
    from search.searcher import TPE_SETTINGS

    liar, joint = not TPE_SETTINGS["constant_liar"], not TPE_SETTINGS["multivariate"]
    startup = next(n for n in START_UPS if n != TPE_SETTINGS["n_startup_trials"])
    return {
        "default": {},
        f"constant_liar={liar}": {"constant_liar": liar},
        f"multivariate={joint}": {"multivariate": joint},
        f"n_startup_trials={startup}": {"n_startup_trials": startup},
    }


def run(c: BenchConfig, searches: Searches) -> dict | None:
    from search.searcher import TPE_SETTINGS

    if not has_t10k(c, TITLE):
        return None
    epochs = c.winner_max_epochs or c.max_epochs
    date = datetime.now(UTC).date().isoformat()
    changes = variants()
    overrides = {
        v: {"tpe": json.dumps(changed) if changed else ""} for v, changed in changes.items()
    }
    rows = [
        seed_row(seed, variant, TPE_SETTINGS | changes[variant], r, judged, date)
        for seed, variant, r, judged in judged_variants(c, searches, "tpe", overrides)
    ]
    # Seeds measured against other settings of the search start a new entry.
    return summarise(rows, search_sizes(c, epochs) | {"tpe": TPE_SETTINGS})


def measure(t10k_dir: str, run_dir: str) -> dict:
    """In a child process: the winner scored on t10k, as benchmark 7 scores it."""
    return judge_best(Path(run_dir), load_t10k(t10k_dir))


def seed_row(seed: int, variant: str, settings: dict, r: dict, judged: dict, date: str) -> dict:
    return {"seed": seed, "variant": variant, "settings": settings, "date": date} | judged_row(
        r, judged
    )


def merge(old: dict, new: dict) -> dict:
    return merge_seeds(old, new, summarise)


def summarise(rows: list[dict], sizes: dict) -> dict:
    order = list(dict.fromkeys(["default", *(r["variant"] for r in rows)]))
    rows = sorted(rows, key=lambda r: (r["seed"], order.index(r["variant"])))
    seeds = sorted({r["seed"] for r in rows})
    of = {v: {r["seed"]: r for r in rows if r["variant"] == v} for v in order}
    by = {v: {k: summary([of[v][n][k] for n in seeds]) for k in MEASURES} for v in order}
    base = of["default"]
    against = {
        v: {
            "wall_ratio": summary([of[v][n]["wall_s"] / base[n]["wall_s"] for n in seeds]),
            "t10k_gain_pts": summary(
                [100 * (of[v][n]["selected_t10k"] - base[n]["selected_t10k"]) for n in seeds]
            ),
        }
        for v in order[1:]
    }
    return {
        "sizes": sizes | {"seeds": seeds},
        "per_seed": rows,
        "by_variant": by,
        "against_default": against,
        "default_settings": base[seeds[0]]["settings"],
        "goals": goals(against, base[seeds[0]]["settings"], len(seeds)),
    }


def beats(wall_ratio: float, t10k_gain_pts: float) -> bool:
    """Whether a variant beats the default by more than one run's noise."""
    more_accurate = t10k_gain_pts >= MARGIN_PTS and wall_ratio <= SLOWER
    faster = wall_ratio <= FASTER and t10k_gain_pts > -MARGIN_PTS
    return more_accurate or faster


def goals(against: dict, measured_default: dict, seeds: int) -> list[dict]:
    from search.searcher import TPE_SETTINGS

    winners = [
        v
        for v, a in against.items()
        if beats(a["wall_ratio"]["median"], a["t10k_gain_pts"]["median"])
    ]
    decided = seeds >= MIN_SEEDS
    measured = "; ".join(
        f"{v}: wall x{a['wall_ratio']['median']:.2f}, t10k {a['t10k_gain_pts']['median']:+.2f} pts"
        for v, a in against.items()
    )
    current = measured_default == TPE_SETTINGS
    return [
        goal(
            "no variant beats TPE's settings by more than one run's noise (medians: "
            f"+{MARGIN_PTS} t10k pts at <= {SLOWER}x the wall time, or <= {FASTER}x the wall "
            f"time within {MARGIN_PTS} pts), and the settings measured are the search's own",
            measured
            + (f"; beaten by {', '.join(winners)}" if winners else "; none beats them")
            + ("" if current else "; measured with other settings than the search's own")
            + ("" if decided else f" ({seeds} of {MIN_SEEDS} seeds)"),
            (not winners and current) if decided else None,
        )
    ]


def render(r: dict) -> str:
    s = r["sizes"]
    variants = table(
        [
            {
                "TPE": variant,
                "wall s": stat(b["wall_s"], ".0f"),
                "wall / default's": stat(r["against_default"][variant]["wall_ratio"], ".2f")
                if variant in r["against_default"]
                else "1",
                "t10k acc (best/)": stat(b["selected_t10k"], ".4f"),
                "t10k minus default's (pts)": stat(
                    r["against_default"][variant]["t10k_gain_pts"], "+.2f"
                )
                if variant in r["against_default"]
                else "0",
                "honesty gap (pts)": stat(b["honesty_gap_pts"], ".2f"),
                "epochs trained": stat(b["epochs"], ".0f"),
                "core use": stat(b["core_use"], ".0f", 100) + " %",
            }
            for variant, b in r["by_variant"].items()
        ]
    )
    seeds = table(
        [
            {
                "seed": p["seed"],
                "TPE": p["variant"],
                "measured": p["date"],
                "wall s": f"{p['wall_s']:.0f}",
                "t10k acc": f"{p['selected_t10k']:.4f}",
                "reported": f"{p['reported_acc']:.4f}",
                "epochs": p["epochs"],
                "selected config": describe(p["best_config"]),
            }
            for p in r["per_seed"]
        ]
    )
    default = ", ".join(f"{k}={v}" for k, v in r["default_settings"].items())
    return "\n\n".join(
        [
            f"{seeds_held(s['seeds'])} {s['trials']} trials, {s['max_epochs']}-epoch cap, "
            f"{s['dataset']}, {s['cpus']} CPUs, our default search (ASHA on "
            f"{ours_asha_time(s)}) with TPE's settings "
            f"({default}) and with one setting changed at a time, in the same run. Each "
            "`best/` is scored on MNIST's t10k digits. Medians [min–max] over seeds.",
            variants,
            "<details><summary>per seed</summary>\n\n" + seeds + "\n\n</details>",
        ]
    )
