"""`python -m analysis.compare runs/A runs/B [...] --out DIR [--top-k 3]`: several runs on
one page.

For each run: its winner (each run ranks by its own objective, confirmed figures first)
with its test accuracy, area and early classifier; the accuracy curves of its top k
configurations, one colour per run, so that families of curves (e.g. a `--loss last`
run's against an every-step run's) are seen as families; and its best-so-far accuracy
against wall time. Each run is evaluated on its own test split.

Runs of any datasets compare. The curves are by step only where a step means the same
in every run (one dataset, one length, one patch); otherwise by the share of each series
read.
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


def by_step_compares(runs: list[res.Run], tops: list[pd.DataFrame]) -> bool:
    """Whether a step means the same in every run: one dataset (as --dataset named it)
    of one length, and one patch among the configurations shown. Otherwise the curves
    compare by the share of each series read."""
    datasets = {(run.info.dataset, run.data["length"]) for run in runs}
    patches = {int(p) for top in tops for p in top["patch"]}
    return len(datasets) == 1 and len(patches) == 1


def build(paths: list[Path], top_k: int = 3) -> doc.Document:
    if len(paths) < 2:
        raise UserError("give at least two run folders to compare")
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    runs = [res.load_run(p) for p in paths]
    names = run_names(paths)
    w = res.words(all(run.image for run in runs))
    rows, by_step, by_share, best_times, notes, families, tops = [], [], [], [], [], {}, []
    for name, run in zip(names, runs, strict=True):
        notes += [f"{name}: {note}" for note in run.notes]
        top = res.ranked_top(run, top_k)
        held_out = res.evaluate_on_test(run, top)
        notes += [f"{name}: {note}" for note in held_out.notes]
        top = top.merge(held_out.scores, on="trial_id", how="left")
        tops.append(top)
        labels = {
            t: f"{name}: {label}" for t, label in zip(top["trial_id"], top["name"], strict=True)
        }
        families[name] = list(labels.values())
        steps = held_out.by_step.assign(label=held_out.by_step["trial_id"].map(labels), run=name)
        by_step.append(steps)
        share = held_out.by_share
        by_share.append(share.assign(label=share["trial_id"].map(labels), run=name))
        best_steps = steps[steps["trial_id"] == top["trial_id"].iloc[0]]
        points = res.recognition_points(best_steps) if not best_steps.empty else pd.DataFrame()
        rows.append(_row(name, run, top.iloc[0], points))
        best_times.append(res.best_so_far_by_time(run, m.VAL_ACC).assign(run=name))
    style = plots.family_styles(families)
    table = pd.DataFrame(rows)
    best_times = pd.concat(best_times, ignore_index=True)
    if by_step_compares(runs, tops):
        curves = _step_section(pd.concat(by_step, ignore_index=True), style, w)
    else:
        curves = _share_section(pd.concat(by_share, ignore_index=True), style, w)

    datasets = {run.info.dataset for run in runs}
    shown = [p for p in PARAMS if any(p in run.params for run in runs)]
    sections = [
        doc.Section(
            "Best configuration of each run",
            [
                "Each run's winner by its own objective (the confirmed figure where the "
                "run confirmed its best configurations, else the validation figure), with "
                "its test figures on that run's own test split (never used to choose); "
                "its early classifier at the threshold its search chose on validation."
                + (
                    " The runs use different datasets, so their figures are each "
                    "measured on their own data."
                    if len(datasets) > 1
                    else ""
                ),
                doc.Table(_display(table, shown, w)),
            ],
            data={"runs.csv": table},
        ),
        curves,
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
        "dataset": info.dataset,
        "seed": info.seed,
        "trials": len(run.trials),
        "wall_seconds": info.wall_seconds,
        "trial_id": best["trial_id"],
        **{k: best[k] for k in PARAMS},
        "loss": info.flags["loss"],
        "objective": info.objective,
        m.VAL_ACC: best[m.VAL_ACC],
        m.VAL_AREA: best[m.VAL_AREA],
        m.VAL_HM: best[m.VAL_HM],
        m.VAL_THRESHOLD: best[m.VAL_THRESHOLD],
        **{c: best.get(c) for c in CONFIRMED_COLUMNS},
        **{c: best.get(c) for c in res.TEST_COLUMNS},
        "test_series": len(run.test) if run.test is not None else None,
    }
    for column in ("steps_to_50pct", "steps_to_90pct"):
        row[column] = points[column].iloc[0] if len(points) else None
    return row


def _display(table: pd.DataFrame, params: list[str], w: res.Words) -> pd.DataFrame:
    def pct(v):
        return "n/a" if v is None or pd.isna(v) else f"{v:.1%}"

    def number(v):
        return "n/a" if v is None or pd.isna(v) else f"{v:.3f}"

    def steps(v):
        return "n/a" if v is None else ("never" if pd.isna(v) else str(int(v)))

    return pd.DataFrame(
        {
            "run": table["run"],
            "dataset": table["dataset"],
            "seed": table["seed"].astype(str),
            "trials": table["trials"],
            "wall time (s)": table["wall_seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}"),
            "best trial": table["trial_id"],
            **res.param_columns(table, tuple(params)),
            "loss": table["loss"],
            "objective": table["objective"],
            "val acc": table[m.VAL_ACC].map(pct),
            "confirmed (95% interval)": [
                confirmed_text(row, m.primary_metric(row["objective"]))
                for _, row in table.iterrows()
            ],
            "test acc": table["test_acc"].map(pct),
            "test area": table["test_area"].map(number),
            "test HM": table["test_hm"].map(number),
            "test earliness": table["test_earliness"].map(pct),
            f"{w.steps} to 50%": table["steps_to_50pct"].map(steps),
            f"{w.steps} to 90%": table["steps_to_90pct"].map(steps),
        }
    )


def _step_section(curves: pd.DataFrame, style: dict, w: res.Words) -> doc.Section:
    section = doc.Section(f"Accuracy versus {w.step}: each run's best configurations")
    if curves.empty:
        section.blocks.append(doc.Note("No run has a test split and a readable checkpoint."))
        return section
    last = int(curves["step"].max())
    section.blocks.append(
        doc.Plot(
            "accuracy_by_step",
            plots.timestep_accuracy(
                curves,
                style,
                f"Test accuracy after each {w.step} read: each run's best configurations",
                thresholds=res.LEVELS,
                tag_meaning="run and rank",
                steps_word=w.steps,
                xlabel=f"{w.steps} read",
            ),
            f"Test accuracy after reading 1, 2, ... {last} {w.steps}: one colour per run, "
            "one line per configuration (solid: the run's best), each on its own run's "
            "test split.",
            {"accuracy_by_step.csv": curves[["run", *res.BY_STEP_COLUMNS]]},
        )
    )
    return section


def _share_section(curves: pd.DataFrame, style: dict, w: res.Words) -> doc.Section:
    section = doc.Section(f"Accuracy versus share of the {w.one} read: each run's best")
    if curves.empty:
        section.blocks.append(doc.Note("No run has a test split and a readable checkpoint."))
        return section
    section.blocks += [
        f"A step does not mean the same in every run (other data, or other patches), so "
        f"the runs compare by the share of each {w.one} read: 5%, 10%, ... 100% of its "
        "own time points.",
        doc.Plot(
            "accuracy_by_share",
            plots.accuracy_by_share(
                curves,
                style,
                f"Test accuracy by the share of each {w.one} read: each run's best configurations",
                tag_meaning="run and rank",
            ),
            "One colour per run, one line per configuration (solid: the run's best), each "
            "on its own run's test split.",
            {"accuracy_by_share.csv": curves[["run", *res.BY_SHARE_COLUMNS]]},
        ),
    ]
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
