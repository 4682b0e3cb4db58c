"""`python -m analysis.report runs/NAME [--top-k 5]`: the report of one search run.

Writes `runs/NAME/report/`: `index.html` (self-contained, figures inline), `report.md`,
the figures as PNG and the CSV behind every figure and table. Reads the run folder only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import document as doc
from analysis import plots
from analysis import results as res
from search import metrics as m
from search.errors import UserError
from search.run_folder import (
    ANYTIME_COLUMNS,
    CONFIRMED_COLUMNS,
    REPORT_DIR,
    TOP_K,
    TrialStatus,
    confirmed_text,
    load_model,
    ranked,
)
from search.space import PARAMS, SEED_LABEL

log = logging.getLogger(__name__)

EXAMPLE_DIGITS = 3


def write_report(run_dir: Path, top_k: int = TOP_K) -> Path:
    """Build the report of `run_dir` into `run_dir/report/`; returns that folder.

    Raises UserError if `run_dir` is not a finished run with at least one ranked trial.
    """
    started = time.perf_counter()
    run = res.load_run(Path(run_dir))
    document = build(run, top_k)
    out = doc.write(document, run.path / REPORT_DIR)
    log.info("report of %s written in %.1f s", run.path, time.perf_counter() - started)
    return out


def build(run: res.Run, top_k: int = TOP_K) -> doc.Document:
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    chosen = res.selected(run, top_k)
    seed_names = chosen.loc[chosen["label"] == SEED_LABEL, "name"]
    style = plots.styles(
        chosen["name"], seed_names.iloc[0] if len(seed_names) else None, chosen["short"]
    )
    held_out = res.evaluate_on_test(run, chosen)
    chosen = chosen.merge(held_out.accuracy, on="trial_id", how="left")
    notes = [doc.Note(text) for text in [*run.notes, *held_out.notes]]

    info = run.info
    intro: list = [
        f"Run folder: {run.path}. Dataset: {info.get('dataset', '?')}. "
        f"Search started {info.get('started', '?')}, finished {info.get('finished', '?')}.",
        *notes,
    ]
    sections = [
        _summary(run, chosen, top_k),
        *([_pareto(run, chosen, style)] if len(run.objectives) > 1 else []),
        _timesteps(run, chosen, held_out, style, top_k),
        _recognition(run, held_out, style),
        _digits(run, chosen, style),
        _hyperparameters(run, chosen, style),
        _environment(run),
    ]
    about = {"run": str(run.path), "top_k": top_k, "trials_shown": chosen["trial_id"].tolist()}
    return doc.Document(f"Search report: {run.name}", intro, sections, about=about)


# ---------------------------------------------------------------- 1. summary


def _summary(run: res.Run, chosen: pd.DataFrame, top_k: int) -> doc.Section:
    info, trials = run.info, run.trials
    counts = trials["status"].value_counts()
    count_text = ", ".join(
        f"{counts[s]} {'stopped early by ASHA' if s == TrialStatus.STOPPED else s}"
        for s in TrialStatus
        if s in counts
    )
    sizes = info.get("split_sizes", {})
    best = chosen.iloc[0]
    metric = run.metric
    words = m.METRIC_WORDS[metric]
    confirmed = chosen[m.CONFIRMED_OF[metric]].notna()
    folds = info.get("flags", {}).get("confirm_folds")
    front = (
        ", then the other configurations on the Pareto front"
        if chosen["on_front"].any() and len(run.objectives) > 1
        else ""
    )
    if confirmed.any():
        how = (
            f"retrained on {folds} other folds of the training pool, the best of the "
            f"{int(confirmed.sum())} confirmed by {words}"
        )
        figure = f"confirmed {words} {confirmed_text(best, metric)}, "
        order = (
            f"The top {top_k} configurations, the confirmed ones first by confirmed "
            f"{words} (measured on the folds' validation digits after training afresh; "
            f"95% interval), then by validation {words} at their best epoch{front}, and "
            f"the tutorial's own configuration ({SEED_LABEL})."
        )
    else:
        how, figure = f"highest validation {words}", ""
        order = (
            f"The top {top_k} configurations by validation {words}{front}, and the "
            f"tutorial's own configuration ({SEED_LABEL})."
        )
    blocks: list = [
        f"Dataset {info.get('dataset', '?')}: "
        + ", ".join(f"{n:,} {split}" for split, n in sizes.items())
        + f" digits. {len(trials)} trials: {count_text}. "
        f"Wall time {_duration(info.get('wall_seconds'))}.",
        f"Best configuration ({how}): {best['name']}; {figure}validation "
        f"accuracy {_pct(best[m.VAL_ACC])}, test accuracy {_pct(best.get('test_acc'))} "
        f"(trial {best['trial_id']}, best epoch {_int(best['best_epoch'])} of "
        f"{_int(best['epochs'])}).",
        f"{order} Test figures are measured here, on the {sizes.get('test', '?')} "
        "held-out test digits, with each trial's best checkpoint; they played no part in "
        "choosing. Area: mean accuracy over rows 1-28 (the area under the "
        "accuracy-versus-timestep curve); rows to 50% / 90%: the first row after which "
        "test accuracy reaches it.",
        doc.Table(_config_table(chosen, metric)),
    ]
    data = chosen[["rank", "trial_id", "label", "status", *PARAMS, "epochs", "best_epoch"]]
    data = data.assign(
        **{c: chosen[c] for c in (m.PARAM_COUNT, m.VAL_ACC, *ANYTIME_COLUMNS, *CONFIRMED_COLUMNS)},
        **{c: chosen.get(c) for c in res.TEST_COLUMNS},
        on_front=chosen["on_front"],
    )
    return doc.Section("Summary", blocks, data={"summary.csv": data})


def _measured(table: pd.DataFrame, column: str) -> pd.Series:
    """A column the test evaluation adds (e.g. test_acc); NaN throughout where it could
    not run (no test split)."""
    return table.get(column, pd.Series(np.nan, table.index))


def _config_table(chosen: pd.DataFrame, metric: str) -> pd.DataFrame:
    test = {c: _measured(chosen, c) for c in res.TEST_COLUMNS}
    return pd.DataFrame(
        {
            "rank": chosen["rank"].map(_int),
            "trial": chosen["trial_id"],
            "tutorial": np.where(chosen["label"] == SEED_LABEL, SEED_LABEL, ""),
            **res.param_columns(chosen),
            "outcome": chosen["status"],
            "epochs (best)": [
                f"{_int(e)} ({_int(b)})"
                for e, b in zip(chosen["epochs"], chosen["best_epoch"], strict=True)
            ],
            "val acc": chosen[m.VAL_ACC].map(_pct),
            "val area": chosen[m.VAL_AUC_ROWS].map(_area),
            f"confirmed {'acc' if metric == m.VAL_ACC else 'area'} (95% interval)": [
                confirmed_text(row, metric) for _, row in chosen.iterrows()
            ],
            "test acc": test["test_acc"].map(_pct),
            "test area": test["test_auc_rows"].map(_area),
            "rows to 50% / 90% (test)": [
                "n/a" if pd.isna(acc) else f"{_rows(a)} / {_rows(b)}"
                for acc, a, b in zip(
                    test["test_acc"], test["test_rows_to_50"], test["test_rows_to_90"], strict=True
                )
            ],
            "parameters": chosen[m.PARAM_COUNT].map(_int),
        }
    )


# ---------------------------------------------------------------- 1b. Pareto front


def _pareto(run: res.Run, chosen: pd.DataFrame, style) -> doc.Section:
    """A multi-objective run's trade-off: its front as a figure and a table."""
    objectives = run.objectives
    metrics = [metric for metric, _ in objectives]
    names = chosen.set_index("trial_id")["name"]
    trials = ranked(run.trials, run.metric).dropna(subset=metrics)
    front_ids = set(chosen.loc[chosen["on_front"], "trial_id"])
    trials = trials.assign(
        on_front=trials["trial_id"].isin(front_ids),
        label=trials["trial_id"].map(names).fillna(""),
    )
    front = chosen[chosen["on_front"]].sort_values(metrics[0], ascending=False)
    words = [m.METRIC_WORDS[metric] for metric in metrics]
    table = pd.DataFrame(
        {
            "configuration": front["name"],
            **{
                # A model's size is no validation figure.
                (word if metric == m.PARAM_COUNT else f"val {word}"): front[metric].map(
                    _int if metric == m.PARAM_COUNT else (_pct if metric == m.VAL_ACC else _area)
                )
                for word, metric in zip(words, metrics, strict=True)
            },
            "test acc": _measured(front, "test_acc").map(_pct),
            "test area": _measured(front, "test_auc_rows").map(_area),
        }
    )
    columns = ["trial_id", *PARAMS, *dict.fromkeys([*metrics, m.VAL_ACC, m.VAL_AUC_ROWS])]
    return doc.Section(
        "Pareto front",
        [
            f"This search optimised {words[0]} and {words[1]} together. A configuration "
            "is on the front when no other trial is better on both (at each trial's best "
            f"epoch by {words[0]}); each is one trade-off, and each is drawn in the "
            "accuracy-versus-timestep figure below. ASHA stopped trials on "
            f"{words[0]} alone.",
            doc.Table(table),
            doc.Plot(
                "pareto_front",
                plots.pareto_front(trials, objectives, style),
                f"Every finished trial by validation {words[0]} and {words[1]}; the front "
                "joined by a line.",
                {"pareto_front.csv": trials[[*columns, "on_front"]]},
            ),
        ],
    )


# ---------------------------------------------------------------- 2-3. curves


def _timesteps(
    run: res.Run, chosen: pd.DataFrame, held_out: res.HeldOutResults, style, top_k: int
) -> doc.Section:
    section = doc.Section("Accuracy versus timestep")
    by_step = held_out.by_step
    if by_step.empty:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    points = res.recognition_points(by_step)
    section.blocks += [
        "The model reads a digit one image row at a time, top to bottom. After each row "
        "it can already guess; this shows how often that guess is right on the test "
        "digits, for each configuration. A curve that rises earlier recognises digits "
        "from fewer rows; the height at row 28 is the final test accuracy. The marker on "
        "each curve is where it first reaches 90%.",
        _curve_verdict(by_step, points, chosen),
        doc.Plot(
            "timestep_accuracy",
            plots.timestep_accuracy(
                by_step,
                style,
                f"Test accuracy after each row read: the top {top_k} configurations and "
                "the tutorial's",
                thresholds=res.THRESHOLDS,
            ),
            "Test accuracy after reading 1, 2, ... 28 rows; one line per configuration "
            f"(the tutorial's is black and dashed). {len(run.test)} test digits.",
            {"timestep_accuracy.csv": by_step},
        ),
    ]
    return section


def _curve_verdict(by_step: pd.DataFrame, points: pd.DataFrame, chosen: pd.DataFrame) -> str:
    """The figure's answer in words: who is most accurate, who recognises earliest."""
    short = chosen.set_index("trial_id")["short"]
    final = points.sort_values("final_accuracy", ascending=False).iloc[0]
    text = (
        f"Most accurate after all 28 rows: {short[final['trial_id']]} "
        f"({_pct(final['final_accuracy'])} test accuracy)."
    )
    early = points.dropna(subset=["rows_to_90pct"])
    if early.empty:
        return text + " None of them reaches 90% test accuracy within the 28 rows."
    row = early["rows_to_90pct"].min()
    first = early[early["rows_to_90pct"] == row]
    text += (
        f" Earliest to reach 90%: {', '.join(short[first['trial_id']])}, after {_int(row)} rows"
    )
    if len(first) > 1:
        at_row = by_step[
            (by_step["timestep"] == row) & by_step["trial_id"].isin(first["trial_id"])
        ]
        lead = at_row.sort_values("accuracy", ascending=False).iloc[0]
        text += (
            f"; at that row {short[lead['trial_id']]} is the most accurate "
            f"({_pct(lead['accuracy'])})"
        )
    text += "."
    seed = chosen[chosen["label"] == SEED_LABEL]
    if len(seed) and seed["trial_id"].iloc[0] in set(points["trial_id"]):
        mine = points[points["trial_id"] == seed["trial_id"].iloc[0]].iloc[0]
        text += (
            f" The tutorial's configuration ({seed['short'].iloc[0]}) ends at "
            f"{_pct(mine['final_accuracy'])} and reaches 90% after "
            f"{_rows(mine['rows_to_90pct'])} rows."
        ).replace("after never rows", "never")
    return text


def _recognition(run: res.Run, held_out: res.HeldOutResults, style) -> doc.Section:
    section = doc.Section("Recognition point")
    if held_out.by_step.empty:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    points = res.recognition_points(held_out.by_step)
    table = pd.DataFrame(
        {
            "configuration": points["label"],
            "rows to 50%": points["rows_to_50pct"].map(_rows),
            "rows to 90%": points["rows_to_90pct"].map(_rows),
            "test acc after 28 rows": points["final_accuracy"].map(_pct),
        }
    )
    section.blocks += [
        "How many of the 28 rows each configuration must read before its test accuracy "
        'first reaches 50% and 90% ("never": not within 28 rows).',
        doc.Table(table),
        doc.Plot(
            "recognition_points",
            plots.recognition_points(points, style),
            "Rows needed to reach 50% (hollow) and 90% (filled) test accuracy.",
            {"recognition_points.csv": points},
        ),
    ]
    return section


def _no_test_text(run: res.Run) -> str:
    if run.test is None:
        return "Not available: the run folder has no usable test split (see the notes above)."
    return "Not available: none of these configurations has a readable checkpoint."


# ---------------------------------------------------------------- 4. the tutorial's picture


def _digits(run: res.Run, chosen: pd.DataFrame, style) -> doc.Section:
    section = doc.Section("The best model reading digits, row by row")
    if run.test is None:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    on = res.device()
    model, used = None, None
    for _, row in chosen.sort_values("rank").iterrows():
        if row["checkpoint"] and (run.path / row["checkpoint"]).is_file():
            try:
                model, used = load_model(run.path / row["checkpoint"], on), row
                break
            except Exception:  # already reported in the notes by the test evaluation
                continue
    if model is None:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    if used["rank"] != chosen["rank"].min():
        section.blocks.append(
            doc.Note(f"The best configuration's checkpoint is unusable; shown: {used['name']}.")
        )
    indices = res.example_digits(run.test, EXAMPLE_DIGITS)
    probs = res.digit_probabilities(model, run.test, indices)
    section.blocks.append(
        f"The tutorial's picture, for {used['name']}: for {len(indices)} test digits, "
        "the rows read so far (left of each pair, the orange line marks the last row read) "
        "and the class probabilities after that row (right). The bar of the true class "
        "is coloured."
    )
    for example, part in probs.groupby("example"):
        index = int(part["test_index"].iloc[0])
        section.blocks.append(
            doc.Plot(
                f"digit_{example + 1}",
                plots.digit_reading(
                    part,
                    run.test.images[index].numpy(),
                    used["name"],
                    colour=style[used["name"]]["color"],
                ),
                f"Test digit {index} (class {int(part['true_class'].iloc[0])}) read row by row.",
                {"digit_probabilities.csv": probs} if example == 0 else {},
            )
        )
    return section


# ---------------------------------------------------------------- 5. hyperparameters


def _hyperparameters(run: res.Run, chosen: pd.DataFrame, style) -> doc.Section:
    section = doc.Section("What each hyperparameter does")
    table = res.hyperparameters(run, chosen)
    section.blocks.append(
        doc.Plot(
            "hyperparameters",
            plots.hyperparameter_effects(table, style),
            "Validation accuracy (best epoch) of every finished trial against each "
            "hyperparameter. Crosses: stopped early by ASHA, so judged after fewer epochs.",
            {"hyperparameters.csv": table},
        )
    )
    importance, source, why_not = res.importances(run)
    if importance.empty:
        section.blocks.append(doc.Note(f"Parameter importances: {why_not}"))
    else:
        section.blocks.append(
            doc.Plot(
                "importances",
                plots.importances(importance, f"validation {m.METRIC_WORDS[run.metric]}"),
                f"Optuna's fANOVA importances, from {source}; trials stopped early count "
                "with the best epoch they reached.",
                {"importances.csv": importance},
            )
        )
    by_trial, by_time = res.best_so_far_by_trial(run), res.best_so_far_by_time(run)
    section.blocks.append(
        doc.Plot(
            "best_so_far",
            plots.best_so_far(by_trial, by_time),
            "Best validation accuracy found so far: against trial number (left; dots are "
            "single trials) and against wall time (right; dots are single epochs).",
            {"best_so_far_by_trial.csv": by_trial, "best_so_far_by_time.csv": by_time},
        )
    )
    history = res.study_history(run)
    if (history["source"] != res.STUDY_SOURCES[0]).any():  # else the figure above says it
        section.blocks.append(
            doc.Plot(
                "study_history",
                plots.study_history(history, f"validation {m.METRIC_WORDS[run.metric]}"),
                "The search's Optuna study in its own order: this run's trials and those "
                "it started from (warm start) or shares the study with (another search), "
                "each at its best epoch, and the best so far. TPE proposed each of this "
                "run's trials knowing all the finished ones before it.",
                {"study_history.csv": history},
            )
        )
    curves = res.learning_curves(run, chosen)
    if not curves.empty:
        section.blocks.append(
            doc.Plot(
                "learning_curves",
                plots.learning_curves(curves, style),
                "Learning curves of the configurations above: validation accuracy and "
                "training loss after each epoch.",
                {"learning_curves.csv": curves},
            )
        )
    counts = res.epochs_reached(run)
    section.blocks += [
        _rung_text(counts),
        doc.Plot(
            "epochs_reached",
            plots.epochs_reached(counts),
            "Number of trials by the epoch at which they ended, by outcome.",
            {"epochs_reached.csv": counts},
        ),
    ]
    return section


def _rung_text(counts: pd.DataFrame) -> str:
    stopped = counts[counts["status"] == TrialStatus.STOPPED]
    if stopped.empty:
        return "ASHA stopped no trial early."
    parts = [
        f"{int(n)} after epoch {int(e)}"
        for e, n in zip(stopped["epochs"], stopped["trials"], strict=True)
    ]
    return f"ASHA stopped {int(stopped['trials'].sum())} trials early: " + ", ".join(parts) + "."


# ---------------------------------------------------------------- 6. environment


def _environment(run: res.Run) -> doc.Section:
    env = res.environment(run.info)
    return doc.Section(
        "Environment",
        [
            "What produced this run, to reproduce it: run the command below with the same "
            "package versions. Every trial, with its configuration and outcome, is in the "
            "run folder's trials.csv.",
            doc.Table(env),
        ],
        data={"environment.csv": env},
    )


# ---------------------------------------------------------------- formatting


def _area(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def _pct(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


def _int(value) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


def _rows(value) -> str:
    return "never" if pd.isna(value) else str(int(value))


def _duration(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "unknown"
    minutes, secs = divmod(int(round(float(seconds))), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Write the report of a search run into RUN/report/.",
    )
    parser.add_argument("run", type=Path, help="the run folder, e.g. runs/NAME")
    parser.add_argument(
        "--top-k",
        type=int,
        default=TOP_K,
        help=f"configurations to show next to the tutorial's (default {TOP_K})",
    )
    args = parser.parse_args(argv)
    try:
        out = write_report(args.run, args.top_k)
    except UserError as exc:
        print(f"analysis.report: error: {exc}", file=sys.stderr)
        return 2
    print(out / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
