"""`python -m analysis.report runs/NAME [--top-k 5]`: the report of one search run.

Writes `runs/NAME/report/`: `index.html` (self-contained, figures inline), `report.md`,
the figures as PNG and the CSV behind every figure and table. Reads the run folder only.
It reads runs of any dataset: it speaks of rows and digits only for image data (MNIST,
read row by row), of steps and series otherwise.
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
    EARLY_COLUMNS,
    REPORT_DIR,
    TOP_K,
    TrialStatus,
    confirmed_text,
    load_model,
    ranked,
)
from search.space import SEED_LABEL, log_scaled

log = logging.getLogger(__name__)

EXAMPLES = 3  # test series drawn being read by the best model
# A ranked metric's name in a table header.
SHORT_WORDS = {m.VAL_ACC: "acc", m.VAL_AREA: "area", m.VAL_HM: "HM"}


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
    chosen = chosen.merge(held_out.scores, on="trial_id", how="left")
    notes = [doc.Note(text) for text in [*run.notes, *held_out.notes]]

    info = run.info
    intro: list = [
        f"Run folder: {run.path}. Dataset: {info.dataset}. "
        f"Search started {info.started}, finished {info.finished or '?'}.",
        *notes,
    ]
    sections = [
        _summary(run, chosen, top_k),
        *([_pareto(run, chosen, style)] if len(run.objectives) > 1 else []),
        _by_step(run, chosen, held_out, style, top_k),
        _by_share(run, chosen, held_out, style, top_k),
        _recognition(run, held_out, style),
        _early(run, chosen, held_out, style),
        _reading(run, chosen, style),
        _hyperparameters(run, chosen, style),
        _environment(run),
    ]
    about = {"run": str(run.path), "top_k": top_k, "trials_shown": chosen["trial_id"].tolist()}
    return doc.Document(f"Search report: {run.name}", intro, sections, about=about)


# ---------------------------------------------------------------- 1. summary


def _data_text(run: res.Run) -> str:
    """The data in one sentence: classes, shape, lengths, splits, how the pool is judged."""
    data, sizes, w = run.data, run.info.split_sizes, run.words
    classes = run.classes
    names = ", ".join(map(str, classes[:12])) + (", ..." if len(classes) > 12 else "")
    if run.image:
        shape = f"each a {data['length']}x{data['features']} grey image read row by row"
    else:
        lengths = "each" if data["equal_length"] else "at most, of unequal lengths"
        channel = "value" if data["features"] == 1 else "values"
        shape = (
            f"{data['features']} {channel} per time point, {data['length']} time points {lengths}"
        )
    if "folds" in sizes:
        split = (
            f"{sizes['train']:,} {w.many} in the training pool, judged by "
            f"{sizes['folds']}-fold cross-validation, and {sizes['test']:,} test {w.many}"
        )
    else:
        split = (
            f"{sizes['train']:,} training, {sizes['val']:,} validation and "
            f"{sizes['test']:,} test {w.many}"
        )
    return f"Dataset {run.info.dataset}: {len(classes)} classes ({names}); {shape}; {split}."


def _summary(run: res.Run, chosen: pd.DataFrame, top_k: int) -> doc.Section:
    info, trials, w = run.info, run.trials, run.words
    counts = trials["status"].value_counts()
    count_text = ", ".join(
        f"{counts[s]} {'stopped early by ASHA' if s == TrialStatus.STOPPED else s}"
        for s in TrialStatus
        if s in counts
    )
    best = chosen.iloc[0]
    metric = run.metric
    words = m.METRIC_WORDS[metric]
    confirmed = chosen[m.CONFIRMED_OF[metric]].notna()
    folds = info.flags["confirm_folds"]
    front = (
        ", then the other configurations on the Pareto front"
        if chosen["on_front"].any() and len(run.objectives) > 1
        else ""
    )
    if confirmed.any():
        how = (
            f"retrained on {folds or 'the'} other folds of the training pool, the best of "
            f"the {int(confirmed.sum())} confirmed by {words}"
        )
        figure = f"confirmed {words} {confirmed_text(best, metric)}, "
        order = (
            f"The top {top_k} configurations, the confirmed ones first by confirmed "
            f"{words} (measured on the folds' validation {w.many} after training afresh; "
            f"95% interval), then by validation {words} at their best epoch{front}, and "
            f"the tutorial's own configuration ({SEED_LABEL})."
        )
    else:
        how, figure = f"highest validation {words}", ""
        order = (
            f"The top {top_k} configurations by validation {words}{front}, and the "
            f"tutorial's own configuration ({SEED_LABEL})."
        )
    early = ""
    if pd.notna(threshold := best.get(m.VAL_THRESHOLD)):
        if threshold > 1:
            rule = f"never stops before the end of a {w.one} (its threshold is above 1)"
        elif threshold <= 0:
            rule = f"answers after the first {w.step} (threshold 0)"
        else:
            rule = f"stops once a class has probability {threshold:g} or more"
        rule += ", the rule chosen on validation"
        early = (
            f" Its early classifier {rule}: test accuracy "
            f"{_pct(best.get('test_early_acc'))} after reading "
            f"{_pct(best.get('test_earliness'))} of each {w.one} on average, HM "
            f"{_area(best.get('test_hm'))}."
        )
    blocks: list = [
        _data_text(run) + f" {len(trials)} trials: {count_text}. "
        f"Wall time {_duration(info.wall_seconds)}.",
        f"Best configuration ({how}): {best['name']}; {figure}validation "
        f"accuracy {_pct(best[m.VAL_ACC])}, test accuracy {_pct(best.get('test_acc'))} "
        f"(trial {best['trial_id']}, best epoch {_int(best['best_epoch'])} of "
        f"{_int(best['epochs'])}).{early}",
        f"{order} Test figures are measured here, on the {info.split_sizes['test']:,} "
        f"held-out test {w.many}, with each trial's best checkpoint; they played no part in "
        f"choosing. Area: the mean over test {w.many} of the share of its own {w.steps} "
        f"after which the model is right; {w.steps} to 50% / 90%: the first {w.step} after "
        f"which test accuracy reaches it. Threshold, early acc, earliness, HM: the early "
        f"classifier (section 'Early classification') at the threshold the search chose "
        f"on validation {w.many}.",
        doc.Table(_config_table(run, chosen, metric)),
    ]
    data = chosen[["rank", "trial_id", "label", "status", *run.params, "epochs", "best_epoch"]]
    figures = (m.PARAM_COUNT, m.VAL_ACC, m.VAL_LOSS, *ANYTIME_COLUMNS, *EARLY_COLUMNS)
    data = data.assign(
        **{c: chosen[c] for c in (*figures, *CONFIRMED_COLUMNS)},
        **{c: _measured(chosen, c) for c in res.TEST_COLUMNS},
        on_front=chosen["on_front"],
        checkpoint=chosen["checkpoint"],  # the weights the test figures come from
    )
    return doc.Section("Summary", blocks, data={"summary.csv": data})


def _measured(table: pd.DataFrame, column: str) -> pd.Series:
    """A column the test evaluation adds (e.g. test_acc); NaN throughout where it could
    not run (no test split)."""
    return table.get(column, pd.Series(np.nan, table.index))


def _config_table(run: res.Run, chosen: pd.DataFrame, metric: str) -> pd.DataFrame:
    test = {c: _measured(chosen, c) for c in res.TEST_COLUMNS}
    steps = run.words.steps
    return pd.DataFrame(
        {
            "rank": chosen["rank"].map(_int),
            "trial": chosen["trial_id"],
            "tutorial": np.where(chosen["label"] == SEED_LABEL, SEED_LABEL, ""),
            **res.param_columns(chosen, run.params),
            "outcome": chosen["status"],
            "epochs (best)": [
                f"{_int(e)} ({_int(b)})"
                for e, b in zip(chosen["epochs"], chosen["best_epoch"], strict=True)
            ],
            "val acc": chosen[m.VAL_ACC].map(_pct),
            "val area": chosen[m.VAL_AREA].map(_area),
            "val HM": chosen[m.VAL_HM].map(_area),
            f"confirmed {SHORT_WORDS[metric]} (95% interval)": [
                confirmed_text(row, metric) for _, row in chosen.iterrows()
            ],
            "test acc": test["test_acc"].map(_pct),
            "test area": test["test_area"].map(_area),
            f"{steps} to 50% / 90% (test)": [
                "n/a" if pd.isna(acc) else f"{_steps(a)} / {_steps(b)}"
                for acc, a, b in zip(
                    test["test_acc"],
                    test["test_steps_to_50"],
                    test["test_steps_to_90"],
                    strict=True,
                )
            ],
            "threshold (val)": chosen[m.VAL_THRESHOLD].map(_threshold),
            "test early acc": test["test_early_acc"].map(_pct),
            "test earliness": test["test_earliness"].map(_pct),
            "test HM": test["test_hm"].map(_area),
            "parameters": chosen[m.PARAM_COUNT].map(_int),
        }
    )


# ---------------------------------------------------------------- 1b. Pareto front


def _format_of(metric: str):
    if metric == m.PARAM_COUNT:
        return _int
    return _pct if metric == m.VAL_ACC else _area


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
                    _format_of(metric)
                )
                for word, metric in zip(words, metrics, strict=True)
            },
            "test acc": _measured(front, "test_acc").map(_pct),
            "test area": _measured(front, "test_area").map(_area),
            "test HM": _measured(front, "test_hm").map(_area),
        }
    )
    figures = [*metrics, m.VAL_ACC, m.VAL_AREA, m.VAL_HM]
    columns = ["trial_id", *run.params, *dict.fromkeys(figures)]
    return doc.Section(
        "Pareto front",
        [
            f"This search optimised {words[0]} and {words[1]} together. A configuration "
            "is on the front when no other trial is better on both (at each trial's best "
            f"epoch by {words[0]}); each is one trade-off, and each is drawn in the "
            f"accuracy-versus-{run.step_word} figure below. ASHA stopped trials on "
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


# ---------------------------------------------------------------- 2-4. accuracy while reading


def _reading_text(run: res.Run, chosen: pd.DataFrame) -> str:
    """How the shown models read a series, in one or two sentences."""
    if run.image:
        return "The model reads a digit one image row at a time, top to bottom."
    patches = sorted({int(p) for p in chosen["patch"]})
    if len(patches) == 1:
        per = "one time point" if patches[0] == 1 else f"{patches[0]} consecutive time points"
        return f"The model reads each series {per} per step."
    return (
        "The model reads each series a patch of consecutive time points per step, each "
        f"configuration its own ({', '.join(map(str, patches))}): their steps cover "
        "different lengths of a series, so compare them by the share of the series read "
        "(next section)."
    )


def _by_step(
    run: res.Run, chosen: pd.DataFrame, held_out: res.HeldOutResults, style, top_k: int
) -> doc.Section:
    w = run.words
    section = doc.Section(f"Accuracy versus {w.step}")
    by_step = held_out.by_step
    if by_step.empty:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    points = res.recognition_points(by_step)
    last = int(by_step["step"].max())
    unequal = (
        ""
        if run.data["equal_length"]
        else f" A {w.one} shorter than {w.step} t keeps the answer of its own last {w.step}."
    )
    xlabel = "image rows read, top to bottom" if run.image else f"{w.steps} read"
    section.blocks += [
        f"{_reading_text(run, chosen)} After every {w.step} it can already guess; this "
        f"shows how often that guess is right on the test {w.many}, for each "
        f"configuration.{unequal} A curve that rises earlier recognises the class from "
        f"fewer {w.steps}; its height after its last {w.step} is the final test accuracy. "
        "The marker on each curve is where it first reaches 90%.",
        _curve_verdict(run, by_step, points, chosen),
        doc.Plot(
            "accuracy_by_step",
            plots.timestep_accuracy(
                by_step,
                style,
                f"Test accuracy after each {w.step} read: the top {top_k} configurations "
                "and the tutorial's",
                thresholds=res.LEVELS,
                steps_word=w.steps,
                xlabel=xlabel,
            ),
            f"Test accuracy after reading 1, 2, ... {last} {w.steps}; one line per "
            f"configuration (the tutorial's is black and dashed). {len(run.test):,} test "
            f"{w.many}.",
            {"accuracy_by_step.csv": by_step},
        ),
    ]
    return section


def _curve_verdict(
    run: res.Run, by_step: pd.DataFrame, points: pd.DataFrame, chosen: pd.DataFrame
) -> str:
    """The figure's answer in words: who is most accurate, who recognises earliest."""
    w = run.words
    short = chosen.set_index("trial_id")["short"]
    final = points.sort_values("final_accuracy", ascending=False).iloc[0]
    text = (
        f"Most accurate after the whole {w.one}: {short[final['trial_id']]} "
        f"({_pct(final['final_accuracy'])} test accuracy)."
    )
    early = points.dropna(subset=["steps_to_90pct"])
    if early.empty:
        return text + f" None of them reaches 90% test accuracy within its {w.steps}."
    step = early["steps_to_90pct"].min()
    first = early[early["steps_to_90pct"] == step]
    text += (
        f" Earliest to reach 90%: {', '.join(short[first['trial_id']])}, after "
        f"{_int(step)} {w.steps}"
    )
    if len(first) > 1:
        at_step = by_step[(by_step["step"] == step) & by_step["trial_id"].isin(first["trial_id"])]
        lead = at_step.sort_values("accuracy", ascending=False).iloc[0]
        text += (
            f"; at that {w.step} {short[lead['trial_id']]} is the most accurate "
            f"({_pct(lead['accuracy'])})"
        )
    text += "."
    seed = chosen[chosen["label"] == SEED_LABEL]
    if len(seed) and seed["trial_id"].iloc[0] in set(points["trial_id"]):
        mine = points[points["trial_id"] == seed["trial_id"].iloc[0]].iloc[0]
        reaches = (
            "never reaches 90%"
            if pd.isna(mine["steps_to_90pct"])
            else f"reaches 90% after {_int(mine['steps_to_90pct'])} {w.steps}"
        )
        text += (
            f" The tutorial's configuration ({seed['short'].iloc[0]}) ends at "
            f"{_pct(mine['final_accuracy'])} and {reaches}."
        )
    return text


def _by_share(
    run: res.Run, chosen: pd.DataFrame, held_out: res.HeldOutResults, style, top_k: int
) -> doc.Section:
    w = run.words
    section = doc.Section("Accuracy versus share of the series read")
    by_share = held_out.by_share
    if by_share.empty:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    short = chosen.set_index("trial_id")["short"]
    half = by_share[np.isclose(by_share["share"], 0.5)].sort_values("accuracy", ascending=False)
    section.blocks += [
        f"The same answers by the share of each {w.one} read: after 5%, 10%, ... 100% of "
        f"its own time points (after the first {w.step} that has read at least that "
        f"share). This is how {w.many} of unequal lengths, and configurations that read "
        f"different numbers of time points per {w.step}, compare. At 100% every {w.one} "
        "has been read whole: each curve ends at its final test accuracy.",
        f"After half of each {w.one}: {short[half['trial_id'].iloc[0]]} is the most "
        f"accurate ({_pct(half['accuracy'].iloc[0])}).",
        doc.Plot(
            "accuracy_by_share",
            plots.accuracy_by_share(
                by_share,
                style,
                f"Test accuracy by the share of each {w.one} read: the top {top_k} "
                "configurations and the tutorial's",
            ),
            f"Test accuracy after reading 5%, 10%, ... 100% of each test {w.one}; one line "
            "per configuration, as in the figure above.",
            {"accuracy_by_share.csv": by_share},
        ),
    ]
    return section


def _recognition(run: res.Run, held_out: res.HeldOutResults, style) -> doc.Section:
    w = run.words
    section = doc.Section("Recognition point")
    if held_out.by_step.empty:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    points = res.recognition_points(held_out.by_step)
    table = pd.DataFrame(
        {
            "configuration": points["label"],
            f"{w.steps} to 50%": points["steps_to_50pct"].map(_steps),
            f"{w.steps} to 90%": points["steps_to_90pct"].map(_steps),
            f"test acc after the whole {w.one}": points["final_accuracy"].map(_pct),
        }
    )
    steps = int(held_out.by_step["step"].max())
    section.blocks += [
        f"How many {w.steps} each configuration must read before its test accuracy first "
        f'reaches 50% and 90% ("never": not within its {w.steps}).',
        doc.Table(table),
        doc.Plot(
            "recognition_points",
            plots.recognition_points(points, style, steps, w.steps),
            f"{w.steps.capitalize()} needed to reach 50% (hollow) and 90% (filled) test accuracy.",
            {"recognition_points.csv": points},
        ),
    ]
    return section


def _no_test_text(run: res.Run) -> str:
    if run.test is None:
        return "Not available: the run folder has no usable test split (see the notes above)."
    return "Not available: none of these configurations has a readable checkpoint."


# ---------------------------------------------------------------- 5. early classification


def _early(run: res.Run, chosen: pd.DataFrame, held_out: res.HeldOutResults, style) -> doc.Section:
    w = run.words
    section = doc.Section("Early classification")
    if held_out.tradeoff.empty:
        section.blocks.append(doc.Note(_no_test_text(run)))
        return section
    shown = chosen[chosen["trial_id"].isin(held_out.scores["trial_id"])]
    table = pd.DataFrame(
        {
            "configuration": shown["name"],
            "threshold (chosen on validation)": shown[m.VAL_THRESHOLD].map(_threshold),
            "val HM": shown[m.VAL_HM].map(_area),
            "test early acc": shown["test_early_acc"].map(_pct),
            "test earliness": shown["test_earliness"].map(_pct),
            "test HM": shown["test_hm"].map(_area),
            f"test acc (whole {w.one})": shown["test_acc"].map(_pct),
        }
    )
    data = shown[["trial_id", "label", *EARLY_COLUMNS, *res.TEST_COLUMNS[-3:], "test_acc"]]
    ranks = (
        " This search ranked its trials by this HM on validation (--objective early)."
        if run.metric == m.VAL_HM
        else ""
    )
    section.blocks += [
        f"An early classifier stops reading a {w.one} as soon as the model is confident "
        f"enough: at the first {w.step} whose top class probability reaches a threshold "
        f"(at its last {w.step} if none does), and answers that class. Its earliness is "
        f"the share of the {w.one} read before the decision; the field summarises "
        "accuracy and earliness by their harmonic mean, HM = 2·acc·(1−earliness) / "
        "(acc + 1−earliness). Each configuration's threshold was chosen in the search, "
        f"where its HM was best on the validation {w.many} at its best epoch; here it is "
        f"applied unchanged to the test {w.many}, never re-fitted on them." + ranks,
        _early_verdict(run, shown),
        doc.Table(table),
        doc.Plot(
            "tradeoff",
            plots.tradeoff(
                held_out.tradeoff,
                style,
                "Early classification on test: accuracy against earliness at every threshold",
            ),
            f"The stopping rule at every threshold on the test {w.many}, one line per "
            "configuration (decide at once at the left end, read everything at the right "
            "end); the large marker is the threshold chosen on validation. Grey lines "
            "join points of equal HM.",
            {"tradeoff.csv": held_out.tradeoff},
        ),
    ]
    section.data["early_classification.csv"] = data
    return section


def _early_verdict(run: res.Run, shown: pd.DataFrame) -> str:
    usable = shown.dropna(subset=["test_hm"])
    if usable.empty:
        return "No shown configuration recorded a stopping threshold."
    best = usable.sort_values("test_hm", ascending=False).iloc[0]
    return (
        f"Best test HM: {best['short']} ({_area(best['test_hm'])}: accuracy "
        f"{_pct(best['test_early_acc'])} after reading {_pct(best['test_earliness'])} of "
        f"each {run.words.one} on average, threshold {_threshold(best[m.VAL_THRESHOLD])})."
    )


# ---------------------------------------------------------------- 6. the tutorial's picture


def _reading(run: res.Run, chosen: pd.DataFrame, style) -> doc.Section:
    """The best model reading a few test series: the digit picture for image data (the
    tutorial's), the series picture otherwise."""
    w = run.words
    title = (
        "The best model reading digits, row by row"
        if run.image
        else "The best model reading series, step by step"
    )
    section = doc.Section(title)
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
    indices = res.example_series(run.test, len(run.classes), EXAMPLES)
    probs = res.series_probabilities(model, run.test, indices, run.classes)
    stem = "digit" if run.image else "series"
    if run.image:
        section.blocks.append(
            f"The tutorial's picture, for {used['name']}: for {len(indices)} test digits, "
            "the rows read so far (left of each pair, the orange line marks the last row "
            "read) and the class probabilities after that row (right). The bar of the true "
            "class is coloured."
        )
    else:
        section.blocks.append(
            f"The tutorial's picture for series, for {used['name']}: for {len(indices)} "
            f"test series, the series read up to a step (left of each pair: each channel a "
            "line, the part not read yet light grey, the orange line at the last time point "
            f"read) and the class probabilities after that step (right). Series of more "
            f"than {plots.MAX_PANELS} steps are shown at {plots.MAX_PANELS} evenly spaced "
            "steps. The bar of the true class is coloured."
        )
    colour = style[used["name"]]["color"]
    for example, part in probs.groupby("example"):
        index = int(part["test_index"].iloc[0])
        values = run.test.values[index, : int(run.test.lengths[index])].numpy()  # (L, F)
        if run.image:
            figure = plots.digit_reading(part, values, used["name"], colour=colour)
        else:
            figure = plots.series_reading(
                part,
                values.astype(float),
                model.config.patch,
                used["name"],
                colour=colour,
                step_word=w.step,
            )
        section.blocks.append(
            doc.Plot(
                f"{stem}_{example + 1}",
                figure,
                f"Test {w.one} {index} (class {part['true_name'].iloc[0]}) read {w.step} by "
                f"{w.step}.",
                {f"{stem}_probabilities.csv": probs} if example == 0 else {},
            )
        )
    return section


# ---------------------------------------------------------------- 7. hyperparameters

AXIS_WORDS = {
    m.VAL_ACC: "validation accuracy",
    m.VAL_AREA: "validation area",
    m.VAL_HM: "validation HM",
}


def _hyperparameters(run: res.Run, chosen: pd.DataFrame, style) -> doc.Section:
    section = doc.Section("What each hyperparameter does")
    metric = run.metric
    words, axis = m.METRIC_WORDS[metric], AXIS_WORDS[metric]
    table = res.hyperparameters(run, chosen)
    section.blocks.append(
        doc.Plot(
            "hyperparameters",
            plots.hyperparameter_effects(
                table, style, run.params, metric, f"{axis} (best epoch)", log_scaled(run.space)
            ),
            f"Validation {words} (best epoch) of every finished trial against each searched "
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
                plots.importances(importance, f"validation {words}"),
                f"Optuna's fANOVA importances, from {source}; trials stopped early count "
                "with the best epoch they reached.",
                {"importances.csv": importance},
            )
        )
    by_trial, by_time = res.best_so_far_by_trial(run), res.best_so_far_by_time(run)
    section.blocks.append(
        doc.Plot(
            "best_so_far",
            plots.best_so_far(by_trial, by_time, metric, axis),
            f"Best validation {words} found so far: against trial number (left; dots are "
            "single trials) and against wall time (right; dots are single epochs).",
            {"best_so_far_by_trial.csv": by_trial, "best_so_far_by_time.csv": by_time},
        )
    )
    history = res.study_history(run)
    if (history["source"] != res.STUDY_SOURCES[0]).any():  # else the figure above says it
        section.blocks.append(
            doc.Plot(
                "study_history",
                plots.study_history(history, f"validation {words}"),
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


# ---------------------------------------------------------------- 8. environment


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


def _steps(value) -> str:
    return "never" if pd.isna(value) else str(int(value))


def _threshold(value) -> str:
    """A stopping threshold: a probability, or above 1, never early."""
    if value is None or pd.isna(value):
        return "n/a"
    if value > 1:
        return "never (reads to the end)"
    return "0 (at once)" if value <= 0 else f"{value:g}"


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
