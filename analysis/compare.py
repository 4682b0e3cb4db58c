"""`python -m analysis.compare runs/A runs/B [...] --out DIR [--top-k 3]`: several runs on
one page.

For each run: its winner (each run ranks by its own objective, confirmed figures first)
with its test accuracy and area; the accuracy-versus-timestep curves of its top k
configurations, one colour per run, so that families of curves (e.g. a `--loss last`
run's against an every-row run's) are seen as families; and its best-so-far accuracy
against wall time. Each run is evaluated on its own test split.
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
from search.run_folder import CONFIRMED_COLUMNS, confirmed_text, run_objective
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


def build(paths: list[Path], top_k: int = 3) -> doc.Document:
    if len(paths) < 2:
        raise UserError("give at least two run folders to compare")
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    runs = [res.load_run(p) for p in paths]
    names = run_names(paths)
    rows, curves, best_times, notes, families = [], [], [], [], {}
    for name, run in zip(names, runs, strict=True):
        notes += [f"{name}: {note}" for note in run.notes]
        top = res.ranked_top(run, top_k)
        held_out = res.evaluate_on_test(run, top)
        notes += [f"{name}: {note}" for note in held_out.notes]
        top = top.merge(held_out.accuracy, on="trial_id", how="left")
        labels = {
            t: f"{name}: {label}" for t, label in zip(top["trial_id"], top["name"], strict=True)
        }
        families[name] = list(labels.values())
        curve = held_out.by_step.assign(label=held_out.by_step["trial_id"].map(labels), run=name)
        curves.append(curve)
        best_curve = curve[curve["trial_id"] == top["trial_id"].iloc[0]]
        points = res.recognition_points(best_curve) if not best_curve.empty else pd.DataFrame()
        rows.append(_row(name, run, top.iloc[0], points))
        best_times.append(res.best_so_far_by_time(run).assign(run=name))
    style = plots.family_styles(families)
    table = pd.DataFrame(rows)
    curves = pd.concat(curves, ignore_index=True)
    best_times = pd.concat(best_times, ignore_index=True)

    datasets = {run.info.get("dataset") for run in runs}
    sections = [
        doc.Section(
            "Best configuration of each run",
            [
                "Each run's winner by its own objective (the confirmed figure where the "
                "run confirmed its best configurations, else the validation figure), with "
                "its test accuracy on that run's own test split (never used to choose)."
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
        "loss": info.get("flags", {}).get("loss", "last"),
        "objective": run_objective(info),
        "val_acc": best[m.VAL_ACC],
        m.VAL_AUC_ROWS: best.get(m.VAL_AUC_ROWS),
        **{c: best.get(c) for c in CONFIRMED_COLUMNS},
        "test_acc": best.get("test_acc"),
        "test_auc_rows": best.get("test_auc_rows"),
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
            "loss": table["loss"],
            "objective": table["objective"],
            "val acc": table["val_acc"].map(pct),
            "confirmed (95% interval)": [
                confirmed_text(row, m.primary_metric(row["objective"]))
                for _, row in table.iterrows()
            ],
            "test acc": table["test_acc"].map(pct),
            "test area": table["test_auc_rows"].map(
                lambda v: "n/a" if v is None or pd.isna(v) else f"{v:.3f}"
            ),
            "rows to 50%": table["rows_to_50pct"].map(rows),
            "rows to 90%": table["rows_to_90pct"].map(rows),
        }
    )


def _curves_section(curves: pd.DataFrame, style: dict) -> doc.Section:
    section = doc.Section("Accuracy versus timestep: each run's best configurations")
    if curves.empty:
        section.blocks.append(doc.Note("No run has a test split and a readable checkpoint."))
        return section
    section.blocks.append(
        doc.Plot(
            "timestep_accuracy",
            plots.timestep_accuracy(
                curves,
                style,
                "Test accuracy after each row read: each run's best configurations",
                thresholds=res.THRESHOLDS,
                tag_meaning="run and rank",
            ),
            "Test accuracy after reading 1, 2, ... 28 rows: one colour per run, one line "
            "per configuration (solid: the run's best), each on its own run's test split.",
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
    parser.add_argument(
        "--top-k", type=int, default=3, help="configurations per run in the curves (default 3)"
    )
    args = parser.parse_args(argv)
    try:
        out = doc.write(build(args.runs, args.top_k), args.out)
    except UserError as exc:
        print(f"analysis.compare: error: {exc}", file=sys.stderr)
        return 2
    print(out / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
