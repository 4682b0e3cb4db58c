"""Benchmark 8: anytime recognition, judged on unseen digits.

Three searches per seed, each the default search but for its flags: the tutorial's
objective (`--loss last --objective accuracy`), an every-row one (`--loss all
--objective anytime`) and a multi-objective one (`--objective accuracy+size`). Each
winner (`best/`) and each configuration on the multi-objective run's Pareto front is
scored on MNIST's t10k digits (never used for selection): final accuracy, the area under
the accuracy-by-row curve (mean accuracy over rows 1-28) and the first rows at which
accuracy reaches 50% and 90%.
"""

from __future__ import annotations

from pathlib import Path

from analysis.results import load_run, pareto_front
from bench.common import (
    BenchConfig,
    Searches,
    fmt,
    goal,
    has_t10k,
    load_t10k,
    merge_seeds,
    run_child,
    search_sizes,
    seeds_held,
    stat,
    summary,
    table,
)
from bench.winner import each
from models.train import Evaluation, evaluate
from search import metrics as m
from search.run_folder import load_best, load_model

TITLE = "8. Anytime recognition"
# name -> (--loss, --objective) of the search
SEARCHES = {
    "last": ("last", "accuracy"),
    "every_row": ("all", "anytime"),
    "size": ("last", "accuracy+size"),
}
FIGURES = ("t10k_acc", "t10k_auc", "rows_to_50", "rows_to_90")


def run(c: BenchConfig, searches: Searches) -> dict | None:
    if not has_t10k(c, TITLE):
        return None
    epochs = c.winner_max_epochs or c.max_epochs
    rows = []
    for seed in c.seeds:
        runs = {
            name: searches.get("ours", seed, max_epochs=epochs, loss=loss, objective=objective)
            for name, (loss, objective) in SEARCHES.items()
        }
        job = {
            "kind": "anytime",
            "t10k_dir": c.t10k_dir,
            "run_dirs": {name: r["run_dir"] for name, r in runs.items()},
        }
        judged = run_child(job, c)
        rows.append(
            {
                "seed": seed,
                "wall_s": {name: r["wall_s"] for name, r in runs.items()},
                **judged,
            }
        )
    return summarise(rows, search_sizes(c, epochs))


def measure(t10k_dir: str, run_dirs: dict[str, str]) -> dict:
    """In a child process: each run's winner on t10k, and the size run's front."""
    t10k = load_t10k(t10k_dir)

    def judge(model) -> dict:
        return figures(evaluate(model, t10k))

    out = {name: judge(load_best(Path(path)).model) for name, path in run_dirs.items()}
    run = load_run(Path(run_dirs["size"]))
    out["front"] = [
        {
            "trial_id": row["trial_id"],
            "params": int(row[m.PARAM_COUNT]),
            "val_acc": float(row[m.VAL_ACC]),
            **judge(load_model(run.path / row["checkpoint"])),
        }
        for _, row in pareto_front(run).iterrows()
    ]
    return out


def figures(result: Evaluation) -> dict:
    """FIGURES of one evaluation on the t10k digits."""
    return {
        "t10k_acc": result.acc,
        "t10k_auc": result.area,
        "rows_to_50": result.first_step_reaching(0.5),
        "rows_to_90": result.first_step_reaching(0.9),
    }


def small_and_close(front: list[dict], within_pts: float = 0.5) -> dict:
    """The front's most accurate configuration on t10k, and its smallest configuration
    within `within_pts` points of it; `ratio` is the latter's share of the former's
    parameters."""
    best = max(front, key=lambda f: f["t10k_acc"])
    close = [f for f in front if f["t10k_acc"] >= best["t10k_acc"] - within_pts / 100]
    small = min(close, key=lambda f: f["params"])
    return {"best": best, "small": small, "ratio": small["params"] / best["params"]}


def summarise(rows: list[dict], sizes: dict) -> dict:
    by = {name: {k: summary([r[name][k] for r in rows]) for k in FIGURES} for name in SEARCHES}
    gaps = [100 * (r["last"]["t10k_acc"] - r["every_row"]["t10k_acc"]) for r in rows]
    earlier = [
        None
        if r["last"]["rows_to_90"] is None or r["every_row"]["rows_to_90"] is None
        else r["last"]["rows_to_90"] - r["every_row"]["rows_to_90"]
        for r in rows
    ]
    fronts = [small_and_close(r["front"]) for r in rows if r["front"]]
    ratio = summary([f["ratio"] for f in fronts])
    wall = {name: summary([r["wall_s"][name] for r in rows]) for name in SEARCHES}
    result = {
        "sizes": sizes | {"seeds": [r["seed"] for r in rows]},
        "per_seed": rows,
        "by_search": by,
        "wall_s": wall,
        "acc_gap_pts": summary(gaps),
        "rows_earlier_90": summary(earlier),
        "front_ratio": ratio,
    }
    seeds = result["sizes"]["seeds"]
    area = by["every_row"]["t10k_auc"]
    result["goals"] = [
        goal(
            "every-row winner's t10k area >= 0.55 (median)",
            f"{area['median']:.3f} ({each(seeds, area, '.3f')}); last-row winner "
            f"{by['last']['t10k_auc']['median']:.3f}",
            area["median"] >= 0.55,
        ),
        goal(
            "its t10k accuracy no more than 0.5 pts below the last-row winner's (median)",
            f"{result['acc_gap_pts']['median']:+.2f} pts (last-row minus every-row; "
            f"{each(seeds, result['acc_gap_pts'], '+.2f')})",
            result["acc_gap_pts"]["median"] <= 0.5,
        ),
        goal(
            "its 90% recognition point >= 2 rows earlier than the last-row winner's (median)",
            "n/a"
            if result["rows_earlier_90"]["median"] is None
            else f"{result['rows_earlier_90']['median']:g} rows earlier "
            f"({each(seeds, result['rows_earlier_90'], 'g')})",
            None
            if result["rows_earlier_90"]["median"] is None
            else result["rows_earlier_90"]["median"] >= 2,
        ),
        goal(
            "accuracy+size front holds a configuration within 0.5 pts of its most accurate "
            "with <= 1/4 of its parameters (median share)",
            "no front" if ratio["median"] is None else f"{ratio['median']:.2f} of the parameters",
            None if ratio["median"] is None else ratio["median"] <= 0.25,
        ),
    ]
    return result


def merge(old: dict, new: dict) -> dict:
    """`new`'s seeds added to `old`'s (bench.common.merge_seeds)."""
    return merge_seeds(old, new, summarise)


LABELS = {
    "last": "--loss last --objective accuracy",
    "every_row": "--loss all --objective anytime",
    "size": "--objective accuracy+size",
}


def render(r: dict) -> str:
    s = r["sizes"]
    winners = table(
        [
            {
                "search": LABELS[name],
                "wall s": stat(r["wall_s"][name], ".0f"),
                "t10k acc": stat(b["t10k_acc"], ".4f"),
                "t10k area": stat(b["t10k_auc"], ".3f"),
                "rows to 50%": stat(b["rows_to_50"], "g"),
                "rows to 90%": stat(b["rows_to_90"], "g"),
            }
            for name, b in r["by_search"].items()
        ]
    )
    fronts = table(
        [
            {
                "seed": p["seed"],
                "trial": f["trial_id"],
                "parameters": f"{f['params']:,}",
                "val acc": fmt(f["val_acc"], ".4f"),
                "t10k acc": fmt(f["t10k_acc"], ".4f"),
                "t10k area": fmt(f["t10k_auc"], ".3f"),
            }
            for p in r["per_seed"]
            for f in sorted(p["front"], key=lambda f: -f["params"])
        ]
    )
    return "\n\n".join(
        [
            f"{seeds_held(s['seeds'])} Each: three searches of {s['trials']} trials, "
            f"{s['max_epochs']}-epoch cap, {s['dataset']}, {s['cpus']} CPUs, judged on "
            "MNIST's t10k digits (never used for selection). Winners are each run's "
            "`best/`; area = mean accuracy over rows 1-28. Medians [min–max] over seeds.",
            winners,
            "The accuracy+size run's Pareto front (by validation accuracy and parameter "
            "count), each configuration's best checkpoint on t10k:",
            "<details><summary>fronts per seed</summary>\n\n" + fronts + "\n\n</details>",
        ]
    )
