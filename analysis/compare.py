"""`python -m analysis.compare runs/A runs/B [...] --out DIR`: several runs on one page.

For each run: its winner (by confirmed accuracy where the run confirmed its best, else by
validation accuracy) and that configuration's
test accuracy, its accuracy-versus-timestep curve, and its best-so-far accuracy against
wall time, so that two search strategies, seeds or datasets can be judged side by side.
Each run is evaluated on its own test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis import document as doc
from analysis import plots
from analysis import results as res
from search import metrics as m
from search.errors import UserError
from search.run_folder import CONFIRMED_COLUMNS, confirmed_text
from search.space import PARAMS


def run_names(paths: list[Path]) -> list[str]:
    """Each run's folder name; the parent joins it where two runs share a name."""
    names = [p.resolve().name for p in paths]
    out = []
    for path, name in zip(paths, names, strict=True):
        if names.count(name) > 1:
            name = f"{path.resolve().parent.name}/{name}"
        while name in out:
            name += "'"
        out.append(name)
    return out


def build(paths: list[Path]) -> doc.Document:
    if len(paths) < 2:
        raise UserError("give at least two run folders to compare")
    runs = [res.load_run(p) for p in paths]
    names = run_names(paths)
    style = plots.styles(names, short=names)
    rows, curves, best_times, notes = [], [], [], []
    for name, run in zip(names, runs, strict=True):
        notes += [f"{name}: {note}" for note in run.notes]
        best = res.selected(run, top_k=1).iloc[[0]]
        held_out = res.evaluate_on_test(run, best)
        notes += [f"{name}: {note}" for note in held_out.notes]
        best = best.merge(held_out.accuracy, on="trial_id", how="left")
        label = f"{name}: {best['name'].iloc[0]}"
        style[label] = style[name]
        curve = held_out.by_step.assign(label=label, run=name)
        curves.append(curve)
        points = res.recognition_points(curve) if not curve.empty else pd.DataFrame()
        rows.append(_row(name, run, best.iloc[0], points))
        best_times.append(res.best_so_far_by_time(run).assign(run=name))
    table = pd.DataFrame(rows)
    curves = pd.concat(curves, ignore_index=True)
    best_times = pd.concat(best_times, ignore_index=True)

    datasets = {run.info.get("dataset") for run in runs}
    sections = [
        doc.Section(
            "Best configuration of each run",
            [
                "Each run's winner (by confirmed accuracy where the run confirmed its best "
                "configurations, else by validation accuracy), with its test accuracy on "
                "that run's own test split (never used to choose)."
                + (
                    " The runs use different datasets, so their accuracies are each "
                    "measured on their own data."
                    if len(datasets) > 1
                    else ""
                ),
                doc.Table(_display(table)),
            ],
            data={"runs.csv": table},
        ),
        _curves_section(curves, style),
        doc.Section(
            "Best so far, by wall time",
            [
                doc.Plot(
                    "best_so_far",
                    plots.best_so_far_runs(best_times, style),
                    "Best validation accuracy found so far by each run, against the time "
                    "since that run started.",
                    {"best_so_far_by_time.csv": best_times},
                )
            ],
        ),
        _environment_section(names, runs),
    ]
    intro = [
        "Runs compared: " + "; ".join(f"{n} ({r.path})" for n, r in zip(names, runs, strict=True)),
        *[doc.Note(n) for n in notes],
    ]
    about = {"runs": [str(r.path) for r in runs]}
    return doc.Document("Run comparison: " + ", ".join(names), intro, sections, about=about)


def _row(name: str, run: res.Run, best: pd.Series, points: pd.DataFrame) -> dict:
    info = run.info
    row = {
        "run": name,
        "dataset": info.get("dataset", ""),
        "seed": info.get("seed", ""),
        "trials": len(run.trials),
        "wall_seconds": info.get("wall_seconds"),
        "trial_id": best["trial_id"],
        **{k: best[k] for k in PARAMS},
        "val_acc": best[m.VAL_ACC],
        **{c: best.get(c) for c in CONFIRMED_COLUMNS},
        "test_acc": best.get("test_acc"),
        "test_digits": len(run.test) if run.test is not None else None,
    }
    for column in ("rows_to_50pct", "rows_to_90pct"):
        row[column] = points[column].iloc[0] if len(points) else None
    return row


def _display(table: pd.DataFrame) -> pd.DataFrame:
    def pct(v):
        return "n/a" if v is None or pd.isna(v) else f"{v:.1%}"

    def rows(v):
        return "n/a" if v is None else ("never" if pd.isna(v) else str(int(v)))

    return pd.DataFrame(
        {
            "run": table["run"],
            "dataset": table["dataset"],
            "seed": table["seed"].astype(str),
            "trials": table["trials"],
            "wall time (s)": table["wall_seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}"),
            "best trial": table["trial_id"],
            **res.param_columns(table),
            "val acc": table["val_acc"].map(pct),
            "confirmed (95% interval)": [confirmed_text(row) for _, row in table.iterrows()],
            "test acc": table["test_acc"].map(pct),
            "rows to 90%": table["rows_to_90pct"].map(rows),
        }
    )


def _curves_section(curves: pd.DataFrame, style: dict) -> doc.Section:
    section = doc.Section("Accuracy versus timestep of each run's best configuration")
    if curves.empty:
        section.blocks.append(doc.Note("No run has a test split and a readable checkpoint."))
        return section
    section.blocks.append(
        doc.Plot(
            "timestep_accuracy",
            plots.timestep_accuracy(
                curves,
                style,
                "Test accuracy after each row read: the best configuration of each run",
                thresholds=res.THRESHOLDS,
                tag_meaning="run",
            ),
            "Test accuracy after reading 1, 2, ... 28 rows, one line per run (its best "
            "configuration), each on its own run's test split.",
            {
                "timestep_accuracy.csv": curves[
                    ["run", "label", "trial_id", "timestep", "accuracy"]
                ]
            },
        )
    )
    return section


def _environment_section(names: list[str], runs: list[res.Run]) -> doc.Section:
    frames = [
        res.environment(r.info).set_index("item")["value"].rename(n)
        for n, r in zip(names, runs, strict=True)
    ]
    table = pd.concat(frames, axis=1).fillna("").reset_index()
    return doc.Section(
        "Environment of each run",
        [
            "What produced each run: command, seed, dataset, machine and package versions.",
            doc.Table(table),
        ],
        data={"environment.csv": table},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.compare",
        description="Put several search runs side by side in one report folder.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, e.g. runs/A runs/B")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to write the comparison to"
    )
    args = parser.parse_args(argv)
    try:
        out = doc.write(build(args.runs), args.out)
    except UserError as exc:
        print(f"analysis.compare: error: {exc}", file=sys.stderr)
        return 2
    print(out / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
