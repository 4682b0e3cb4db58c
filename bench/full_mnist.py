"""Benchmark 13: the default search on full MNIST, in a two-hour budget.

The issue's command, `python -m search.run --dataset mnist --data-dir
../shared/datasets/mnist --time-budget 2h`, on the machine's cores: 54,000 training and
6,000 validation digits of MNIST's training files, every other flag at its default. Its
`best/` (the confirmed winner) is scored on MNIST's t10k digits, which are the run's own
test split: never used for selection. One run (over two hours on 2 cores), either through
`python -m bench --scale full --only full_mnist`, or recorded from a run folder that the
command above made: `python -m bench.full_mnist RUN_DIR` (the command is read from its
run.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import SHARED_MNIST, BenchConfig, Searches, goal, run_child, table
from bench.efficiency import describe
from search import metrics as m
from search.run_folder import BEST_CONFIG, TRIALS_CSV, load_best, read_run_info, read_trials

TITLE = "13. Full MNIST in a two-hour budget"
TARGET = 0.99  # published row-by-row LSTMs reach 98-98.9%


def run(c: BenchConfig, searches: Searches) -> dict | None:
    data_dir = c.data_dir if c.dataset == "mnist" else str(SHARED_MNIST)
    if c.full_mnist_budget_s is None:
        print(f"{TITLE}: skipped at this size (--scale full runs it: over two hours)")
        return None
    if not Path(data_dir).is_dir():
        print(f"{TITLE}: skipped, no MNIST files in {data_dir} (nothing is downloaded)")
        return None
    seed = c.seeds[0]
    r = searches.get(
        "ours",
        seed,
        dataset="mnist",
        data_dir=data_dir,
        time_budget=c.full_mnist_budget_s,
        max_epochs=c.winner_max_epochs or c.max_epochs,
    )
    job = {"kind": "full_mnist", "t10k_dir": data_dir, "run_dir": r["run_dir"]}
    result = run_child(job, c) | {"wall_s": r["wall_s"]}
    return result | {"goals": goals(result)}


def measure(t10k_dir: str, run_dir: str) -> dict:
    """In a child process: the run's winner on t10k, and what the run did."""
    from bench.common import load_t10k
    from models.train import evaluate

    run = Path(run_dir)
    info = read_run_info(run)
    trials = read_trials(run / TRIALS_CSV)
    about = json.loads((run / BEST_CONFIG).read_text())
    flags = info["flags"]
    return {
        "command": info["command"],
        "t10k": evaluate(load_best(run).model, load_t10k(t10k_dir)).acc,
        "reported": about.get(m.CONFIRMED_ACC, about[m.VAL_ACC]),
        "reported_low": about.get(m.CONFIRMED_LOW),
        "reported_high": about.get(m.CONFIRMED_HIGH),
        "best_config": about["hyperparameters"],
        "best_epoch": about["epoch"],
        "split_sizes": info["split_sizes"],
        "time_budget_s": flags["time_budget"],
        "trials": int(len(trials)),
        "trials_asked": flags["trials"],
        "statuses": trials["status"].value_counts().to_dict(),
        "epochs": int(trials["epochs"].sum()),
        "search_s": info["wall_seconds"],
        "finished": info.get("finished"),  # when the search ended (before confirming)
        "confirm_s": info.get("confirm_seconds"),
    }


def render(r: dict) -> str:
    sizes = r["split_sizes"]
    row = {
        "trials": f"{r['trials']} of {r['trials_asked']}",
        "epochs": r["epochs"],
        "search s": f"{r['search_s']:.0f}",
        "confirmation s": f"{r['confirm_s']:.0f}" if r["confirm_s"] is not None else "",
    }
    if r.get("wall_s"):  # measured where the bench ran the search itself
        row["whole run s"] = f"{r['wall_s']:.0f}"
    row |= {
        "winner": describe(r["best_config"]),
        "reported (95% interval)": _reported(r),
        "t10k acc": f"{r['t10k']:.4f}",
    }
    rows = [row]
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(r["statuses"].items()))
    budget = f"{r['time_budget_s'] / 3600:g} h" if r["time_budget_s"] else "none"
    return "\n\n".join(
        [
            f"`{r['command']}`: {sizes['train']:,} training, {sizes['val']:,} validation "
            f"digits; the judge is MNIST's t10k set ({sizes['test']:,} digits, the run's test "
            f"split, never used for selection). Time budget: {budget}; "
            f"trials: {statuses}.",
            table(rows),
        ]
    )


def _reported(r: dict) -> str:
    text = f"{r['reported']:.4f}"
    if r["reported_low"] is not None:
        text += f" [{r['reported_low']:.4f}–{r['reported_high']:.4f}]"
    return text


def goals(r: dict) -> list[dict]:
    return [
        goal(
            f"the winner scores >= {TARGET:.1%} on t10k",
            f"{r['t10k']:.4f} ({describe(r['best_config'])})",
            r["t10k"] >= TARGET,
        )
    ]


def record(run_dir: Path, t10k_dir: Path) -> dict:
    """Benchmark 13's entry for a run folder the CLI made: its command and figures."""
    from bench.__main__ import machine

    started = time.monotonic()
    result = measure(str(t10k_dir), str(run_dir))
    result["goals"] = goals(result)  # no whole-run time: run.json times its two parts
    here = machine()
    here["load_before"] = here["load_after"] = "n/a"  # the run came before this record
    return {
        "command": result["command"],
        "date": result["finished"] or datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": result["search_s"] + (result["confirm_s"] or 0) + time.monotonic() - started,
        "machine": here,
        "result": result,
    }


def main(argv: list[str] | None = None) -> int:
    from bench.report import REPORT_MD, RESULTS_JSON, load_results, render

    p = argparse.ArgumentParser(prog="python -m bench.full_mnist", description=__doc__)
    p.add_argument("run_dir", type=Path, help="the run folder of the search.run command")
    p.add_argument("--t10k-dir", type=Path, default=SHARED_MNIST, help="MNIST's IDX files")
    args = p.parse_args(argv)
    results = load_results()
    results.setdefault("full_mnist", {})["full"] = record(args.run_dir, args.t10k_dir)
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    REPORT_MD.write_text(render(results))
    print(results["full_mnist"]["full"]["result"]["goals"][0]["measured"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
