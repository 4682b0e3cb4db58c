"""Benchmark 10: studies that outlive a run: a warm start, and what storage costs.

Per seed, a default search (`--confirm-top 0`: the search alone), then a second one
warm-started from the first (`--warm-start FIRST`, with the first's wall time as its
`--time-budget`: the goal asks for half of it). The warm start's figure is the time its
search took to report the first search's best validation accuracy, both clocks started
before the data is read and Ray starts. A warm start trains the first's best three
configurations again first, on the same seed and digits, so it can reach that figure
with its first trials; `warm_tpe_best` says how far the configurations TPE proposed
(the rest) got on their own.

Storage: the searcher's work for the first search's trials (its per-epoch accuracies,
replayed into `EpochOptunaSearch` trial by trial: a proposal, every epoch's report, the
end, a saved state) is timed with the study in memory and in SQLite; the difference is
set against the first search's wall time. Whole searches differ by far more than 2% from
run to run (up to 3x), so comparing two of them could not measure this.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import (
    BenchConfig,
    Searches,
    fmt,
    goal,
    merge_seeds,
    run_child,
    search_sizes,
    seeds_held,
    stat,
    summary,
    table,
)
from bench.winner import each

TITLE = "10. Studies that outlive a run"


def run(c: BenchConfig, searches: Searches) -> dict:
    epochs = c.winner_max_epochs or c.max_epochs
    rows = []
    for seed in c.seeds:
        first = searches.get("ours", seed, max_epochs=epochs, confirm_top=0)
        warm = searches.get(
            "ours",
            seed,
            max_epochs=epochs,
            confirm_top=0,
            warm_start=(first["run_dir"],),
            time_budget=round(first["wall_s"]),
        )
        target = max(acc for _, acc in first["events"])
        retrained, proposed = warm_split(warm["run_dir"])
        storage = run_child({"kind": "studies", "run_dir": first["run_dir"]}, c)
        rows.append(
            {
                "seed": seed,
                "first_wall_s": first["wall_s"],
                "first_best": target,
                "first_reached_s": reached(first["events"], target),
                "warm_wall_s": warm["wall_s"],
                "warm_best": max(acc for _, acc in warm["events"]),
                "warm_reached_s": reached(warm["events"], target),
                "warm_retrained_best": retrained,
                "warm_tpe_best": proposed,
                **storage,
            }
        )
    return summarise(rows, search_sizes(c, epochs))


def reached(events: list[list[float]], target: float) -> float | None:
    """Seconds until a search first reported `target` (None: never)."""
    return next((t for t, acc in sorted(events) if acc >= target), None)


def warm_split(run_dir: str) -> tuple[float | None, float | None]:
    """Best validation accuracy of a warm-started run's retrained configurations, and of
    the configurations TPE proposed."""
    from search import study as st
    from search.run_folder import TRIALS_CSV, read_run_info, read_trials

    run = Path(run_dir)
    study = st.load(st.ref_of_run(run, read_run_info(run)))
    retrained = {t.number for t in study.trials if t.user_attrs.get("remeasures")}
    table = read_trials(run / TRIALS_CSV)
    is_retrained = table["study_trial"].isin(retrained)
    best = [table.loc[rows, "val_acc"].max() for rows in (is_retrained, ~is_retrained)]
    return tuple(None if pd.isna(b) else float(b) for b in best)


def measure(run_dir: str) -> dict:
    """In a child process: the searcher's seconds for `run_dir`'s trials, study in memory
    and in SQLite."""
    from analysis.results import read_epochs
    from search.run_folder import TRIALS_CSV, read_trials

    table_ = read_trials(Path(run_dir) / TRIALS_CSV).sort_values("study_trial")
    epochs = read_epochs(Path(run_dir), table_["trial_id"])
    curves = [
        epochs.loc[epochs["trial_id"] == trial_id, "val_acc"].tolist()
        for trial_id in table_["trial_id"]
    ]
    curves = [c for c in curves if c]
    max_epochs = max(len(c) for c in curves)
    with tempfile.TemporaryDirectory() as tmp:
        # A search has imported and set up everything before its first trial: so here.
        _replay(curves[:2], max_epochs, Path(tmp) / "warm-up.db", Path(tmp))
        memory = _replay(curves, max_epochs, None, Path(tmp))
        sqlite = _replay(curves, max_epochs, Path(tmp) / "study.db", Path(tmp))
    return {
        "replayed_trials": len(curves),
        "replayed_epochs": sum(map(len, curves)),
        "memory_s": memory,
        "sqlite_s": sqlite,
    }


def _replay(curves: list[list[float]], max_epochs: int, db: Path | None, tmp: Path) -> float:
    from search import metrics as m
    from search import study as st
    from search.searcher import EpochOptunaSearch, tpe_sampler
    from search.space import SEED_CONFIG, SearchSpace

    ref = st.StudyRef(st.sqlite_url(db), "bench") if db else None
    started = time.perf_counter()
    if ref:
        st.prepare(ref, st.signature("mnist-5k", "last", "accuracy", SearchSpace()))
    searcher = EpochOptunaSearch(
        space=SearchSpace(),
        objectives=m.objective_metrics("accuracy"),
        sampler=tpe_sampler(0),
        max_epochs=max_epochs,
        study=ref,
        run="bench",
        points_to_evaluate=[SEED_CONFIG],
    )
    for i, accs in enumerate(curves):
        trial_id = f"t{i}"
        searcher.suggest(trial_id)
        results = [{m.EPOCH: n, m.VAL_ACC: acc} for n, acc in enumerate(accs, start=1)]
        for result in results[:-1]:
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, results[-1])
        searcher.save(str(tmp / "searcher.pkl"))  # Tune saves the searcher as often
    return time.perf_counter() - started


def summarise(rows: list[dict], sizes: dict) -> dict:
    ratio = [
        None if r["warm_reached_s"] is None else r["warm_reached_s"] / r["first_wall_s"]
        for r in rows
    ]
    share = [(r["sqlite_s"] - r["memory_s"]) / r["first_wall_s"] for r in rows]
    result = {
        "sizes": sizes | {"seeds": [r["seed"] for r in rows]},
        "per_seed": rows,
        "warm_reach_ratio": summary(ratio),
        "storage_share": summary(share),
    }
    seeds = result["sizes"]["seeds"]
    r, s = result["warm_reach_ratio"], result["storage_share"]
    result["goals"] = [
        goal(
            "warm-started search reaches the first's best val_acc in <= 1/2 of the first's "
            "wall time (median)",
            "not reached on every seed"
            if r["median"] is None
            else f"{r['median']:.2f} of it ({each(seeds, r, '.2f')})",
            None if r["median"] is None else r["median"] <= 0.5,
        ),
        goal(
            "SQLite storage adds <= 2% to the default search's wall time (median)",
            f"{100 * s['median']:.2f}% ({each(seeds, summary([100 * v for v in share]), '.2f')})",
            s["median"] <= 0.02,
        ),
    ]
    return result


def merge(old: dict, new: dict) -> dict:
    """`new`'s seeds added to `old`'s (bench.common.merge_seeds)."""
    return merge_seeds(old, new, summarise)


def render(r: dict) -> str:
    s = r["sizes"]
    rows = table(
        [
            {
                "seed": p["seed"],
                "first: wall s": fmt(p["first_wall_s"], ".0f"),
                "first: best val_acc": fmt(p["first_best"], ".4f"),
                "first: reached it at s": fmt(p["first_reached_s"], ".0f"),
                "warm start: reached it at s": fmt(p["warm_reached_s"], ".0f", "never"),
                "warm start: best val_acc": fmt(p["warm_best"], ".4f"),
                "of it, retrained / TPE's": f"{fmt(p.get('warm_retrained_best'), '.4f')} / "
                f"{fmt(p.get('warm_tpe_best'), '.4f')}",
                "searcher s, memory": fmt(p["memory_s"], ".2f"),
                "searcher s, SQLite": fmt(p["sqlite_s"], ".2f"),
            }
            for p in r["per_seed"]
        ]
    )
    return "\n\n".join(
        [
            f"{seeds_held(s['seeds'])} Each: a search of {s['trials']} trials, "
            f"{s['max_epochs']}-epoch cap, {s['dataset']}, {s['cpus']} CPUs, no confirmation; "
            "then the same search "
            "warm-started from it, its time budget the first's wall time; the warm start "
            "first trains the first's best three configurations again (same seed and "
            "digits), then TPE proposes from all the first's trials. Warm start reach: "
            f"{stat(r['warm_reach_ratio'], '.2f')} of the first's wall time. Storage: the "
            "searcher's seconds for the first search's trials, replayed with the study in "
            f"memory and in SQLite: {stat(r['storage_share'], '.2f', scale=100)}% of the "
            "search's wall time.",
            rows,
        ]
    )
