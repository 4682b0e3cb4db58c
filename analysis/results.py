"""Run folder -> tidy pandas DataFrames. Reads files only: no Ray session, no data folder.

Everything here works on a run folder copied to another machine: `run.json`,
`trials.csv`, `test_split.pt`, each trial's `result.json` and its best checkpoint.
Test accuracy is computed here, from checkpoints, and is never used to choose anything.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from models.early import THRESHOLDS, EarlyResult, outcomes
from models.lstm import Ensemble, SequenceLSTM, steps_of
from models.train import SHARES, Evaluation, SeriesTensors, evaluate_probs, predict_proba
from search import metrics as m
from search import study as st
from search.data import Split
from search.errors import UserError
from search.run_folder import (
    RESULT_JSON,
    TEST_SPLIT,
    TRIALS_CSV,
    TrialStatus,
    load_model,
    ranked,
    read_test_split,
    read_trials,
    trial_dir,
)
from search.run_record import RUN_JSON, RunRecord
from search.space import PARAMS, SEED_LABEL, SearchSpace, format_param

log = logging.getLogger(__name__)

LEVELS = (0.5, 0.9)  # recognition points: first step at which test accuracy reaches these
# What the report measures of each shown configuration on the run's test split. The
# early classifier's figures are its stopping rule's, at the threshold the search chose
# on validation series (trials.csv's val_threshold), never one fitted on test.
TEST_COLUMNS = [
    "test_acc",
    "test_loss",
    "test_area",
    "test_steps_to_50",
    "test_steps_to_90",
    "test_early_acc",
    "test_earliness",
    "test_hm",
]
EPOCH_COLUMNS = [
    "trial_id",
    m.EPOCH,
    m.VAL_ACC,
    m.VAL_LOSS,
    m.VAL_AREA,
    m.VAL_HM,
    m.TRAIN_LOSS,
    m.DIVERGED,
    "time_total_s",
    "wall_seconds",
]
# The long frames behind the curves.
BY_STEP_COLUMNS = ["label", "trial_id", "step", "accuracy"]
BY_SHARE_COLUMNS = ["label", "trial_id", "share", "accuracy"]
TRADEOFF_COLUMNS = ["label", "trial_id", "threshold", "accuracy", "earliness", "hm", "chosen"]


@dataclass(frozen=True)
class Words:
    """How a report names what a model reads: image rows of digits, or steps of series."""

    step: str  # "row" / "step"
    steps: str
    one: str  # "digit" / "series"
    many: str


def words(image: bool) -> Words:
    """The words for image data (MNIST: a digit read row by row) or any other series."""
    return (
        Words("row", "rows", "digit", "digits")
        if image
        else Words("step", "steps", "series", "series")
    )


@dataclass
class Run:
    """One run folder, read. `notes` says in plain words what the folder lacks."""

    path: Path
    info: RunRecord  # its run.json
    trials: pd.DataFrame  # trials.csv, plus `trial_number` and `rank`
    epochs: pd.DataFrame  # one row per reported epoch of every trial (EPOCH_COLUMNS)
    test: Split | None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def metric(self) -> str:
        """What the run ranks its trials by: its primary objective."""
        return self.info.metric

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """The run's objectives, (metric, mode) pairs; two for a multi-objective search."""
        return m.objective_metrics(self.info.objective)

    @property
    def data(self) -> dict:
        """What run.json says of the data: classes, features, length, image, selection."""
        return self.info.data

    @property
    def classes(self) -> list:
        """The class labels as the data wrote them (ints or strings), in class-index order."""
        return list(self.data["classes"])

    @property
    def image(self) -> bool:
        """Each series is a grey image read row by row (MNIST)."""
        return bool(self.data["image"])

    @property
    def words(self) -> Words:
        return words(self.image)

    @property
    def step_word(self) -> str:
        """What one step of the model is called: "row" for images, else "step"."""
        return self.words.step

    @functools.cached_property
    def space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.info.space)

    @property
    def params(self) -> tuple[str, ...]:
        """The hyperparameters the run searched, in display order."""
        return self.space.params

    @functools.cached_property
    def study(self) -> tuple[optuna.Study | None, str]:
        """The search's Optuna study (opened once), or None and why not: its file is
        missing, or its database cannot be reached from this machine."""
        try:
            return st.load(st.ref_of_run(self.path, self.info)), ""
        except UserError as exc:
            return None, str(exc)


def load_run(run_dir: Path) -> Run:
    """Read a run folder; raises UserError if it is not one, or if no trial finished."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder")
    if not (run_dir / RUN_JSON).is_file():
        raise UserError(f"{run_dir} is not a run folder: it has no {RUN_JSON}")
    info = RunRecord.read(run_dir)
    if not (run_dir / TRIALS_CSV).is_file():
        raise UserError(
            f"{run_dir} has no {TRIALS_CSV}: the search did not finish (or is still running)"
        )
    trials = read_trials(run_dir / TRIALS_CSV)
    metric = info.metric
    if ranked(trials, metric).empty:
        raise UserError(f"{run_dir}: no trial finished an epoch; there is nothing to report")

    notes = []
    epochs = read_epochs(run_dir, trials["trial_id"], info.started)
    lacking = sorted(set(ranked(trials, metric)["trial_id"]) - set(epochs["trial_id"]))
    if lacking:
        notes.append(
            f"{len(lacking)} finished trial(s) have no {RESULT_JSON}, so no learning curve "
            "or timing: " + ", ".join(lacking)
        )
    trials = _add_order(trials, epochs, metric)

    test = None
    if (run_dir / TEST_SPLIT).is_file():
        try:
            test = read_test_split(run_dir)
        except Exception as exc:  # a corrupt file: say so, keep the rest of the report
            notes.append(f"{TEST_SPLIT} could not be read ({type(exc).__name__}: {exc}).")
    else:
        notes.append(
            f"The run folder has no {TEST_SPLIT}, so the test figures (accuracy, the "
            "curves by step and by share, the early classifier) are not available."
        )
    if not (trials["label"] == SEED_LABEL).any():
        notes.append("The tutorial's configuration (`seed`) is not among the trials.")
    return Run(run_dir, info, trials, epochs, test, notes)


def read_epochs(run_dir: Path, trial_ids, started: str) -> pd.DataFrame:
    """Every epoch every trial reported, with its wall-clock time since the run started
    (`started`, run.json's ISO time)."""
    rows = []
    for trial_id in trial_ids:
        path = run_dir / trial_dir(trial_id) / RESULT_JSON
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if m.EPOCH not in record:
                continue
            row = {k: record.get(k) for k in EPOCH_COLUMNS}
            row["trial_id"] = trial_id
            row["wall_seconds"] = record.get("timestamp")
            rows.append(row)
    epochs = pd.DataFrame(rows, columns=EPOCH_COLUMNS)
    epochs[m.DIVERGED] = epochs[m.DIVERGED].fillna(False).astype(bool)
    numbers = (m.VAL_ACC, m.VAL_LOSS, m.VAL_AREA, m.VAL_HM, m.TRAIN_LOSS)
    for column in (*numbers, "time_total_s", "wall_seconds"):
        epochs[column] = pd.to_numeric(epochs[column], errors="coerce")
    epochs["wall_seconds"] = epochs["wall_seconds"] - datetime.fromisoformat(started).timestamp()
    # A trial restored after a failure repeats the epochs after its checkpoint: keep the
    # last report of each epoch for curves (the earlier ones still count for wall time).
    return epochs.sort_values(["wall_seconds", "trial_id", m.EPOCH]).reset_index(drop=True)


def _add_order(trials: pd.DataFrame, epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`trial_number`: 1 for the tutorial's configuration (the search always enqueues it
    first), then the order in which trials started, to the second (Tune's timestamps are
    whole seconds). `rank`: position in `ranked`, best = 1."""
    first = epochs.groupby("trial_id").first()
    start = (first["wall_seconds"] - first["time_total_s"]).rename("start")
    trials = trials.join(start, on="trial_id")
    order = trials.assign(not_seed=trials["label"] != SEED_LABEL).sort_values(
        ["not_seed", "start", "trial_id"], na_position="last"
    )
    trials["trial_number"] = pd.Series(range(1, len(order) + 1), index=order.index)
    best = ranked(trials, metric)
    trials["rank"] = pd.Series(range(1, len(best) + 1), index=best.index)
    return trials.drop(columns="start")


# ---------------------------------------------------------------- the configurations shown


def config_short(row) -> str:
    """A few characters naming a shown configuration: "#3", or "#19 seed"."""
    rank = f"#{int(row['rank'])}" if pd.notna(row.get("rank")) else "unranked"
    return f"{rank} {SEED_LABEL}" if row["label"] == SEED_LABEL else rank


def config_label(row, params: tuple[str, ...] = PARAMS) -> str:
    """A configuration as a reader sees it: rank, tutorial or not, its hyperparameters
    (`params`: those the run searched; `patch` only where it was)."""
    who = config_short(row)
    if row["label"] == SEED_LABEL:
        who += " (the tutorial's)"
    shown = {name: format_param(name, row[name]) for name in params}
    text = (
        f"{who}: {shown['num_layers']} layer{'s' if row['num_layers'] > 1 else ''}"
        f" × {shown['hidden_size']}, dropout {shown['dropout']},"
        f" forget bias {shown['forget_bias']}, lr {shown['lr']},"
        f" batch {shown['batch_size']}"
    )
    return text + (f", patch {shown['patch']}" if "patch" in shown else "")


PARAM_HEADERS = {
    "num_layers": "layers",
    "hidden_size": "hidden",
    "dropout": "dropout",
    "forget_bias": "forget bias",
    "lr": "lr",
    "batch_size": "batch",
    "patch": "patch",
}


def param_columns(table: pd.DataFrame, params: tuple[str, ...] = PARAMS) -> dict[str, pd.Series]:
    """The hyperparameter columns of a table shown to a reader, under short headers."""
    return {
        PARAM_HEADERS[name]: table[name].map(lambda v, name=name: format_param(name, v))
        for name in params
    }


def selected(run: Run, top_k: int) -> pd.DataFrame:
    """The top k configurations by the run's ranking, then (a multi-objective run) the
    other configurations on its Pareto front, then the tutorial's (`seed`)."""
    best = ranked(run.trials, run.metric).head(top_k)
    front = pareto_front(run)
    seed = run.trials[run.trials["label"] == SEED_LABEL]
    chosen = pd.concat([best, front, seed]).drop_duplicates("trial_id")
    on_front = chosen["trial_id"].isin(front["trial_id"]).to_numpy()
    return _named(chosen, run.params).assign(on_front=on_front)


def ranked_top(run: Run, top_k: int) -> pd.DataFrame:
    """The run's best `top_k` configurations by its own ranking, named as in `selected`."""
    return _named(ranked(run.trials, run.metric).head(top_k), run.params)


def _named(chosen: pd.DataFrame, params: tuple[str, ...]) -> pd.DataFrame:
    chosen = chosen.assign(
        name=[config_label(row, params) for _, row in chosen.iterrows()],
        short=[config_short(row) for _, row in chosen.iterrows()],
    )
    return chosen.reset_index(drop=True)


# ---------------------------------------------------------------- test-set evaluation


@dataclass
class HeldOutResults:
    """What the chosen configurations' best checkpoints do on the run's test split."""

    scores: pd.DataFrame  # trial_id and TEST_COLUMNS
    by_step: pd.DataFrame  # BY_STEP_COLUMNS: accuracy after each step
    by_share: pd.DataFrame  # BY_SHARE_COLUMNS: accuracy after each share of the series
    tradeoff: pd.DataFrame  # TRADEOFF_COLUMNS: the stopping rule at every threshold
    notes: list[str]


@dataclass(frozen=True)
class TestFigures:
    """One model on the test series."""

    result: Evaluation  # its `early` is fitted on test: never shown, use `rule`
    rule: EarlyResult | None  # the stopping rule at the validation threshold
    curve: list[EarlyResult]  # the rule at every threshold: the trade-off curve


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def measure(
    model: SequenceLSTM | Ensemble, test: SeriesTensors, threshold: float | None
) -> TestFigures:
    """`model`'s figures on `test`, its early classifier judged at `threshold` (the one
    chosen on validation; None or NaN: the trial recorded none)."""
    probs = predict_proba(model, test)  # (N, S, C)
    patch = model.config.patch
    result = evaluate_probs(probs, test.labels, test.lengths, patch)
    known = threshold is not None and not math.isnan(threshold)
    grid = tuple(sorted({*THRESHOLDS, float(threshold)})) if known else THRESHOLDS
    steps = steps_of(test.lengths, patch)  # (N,)
    curve = outcomes(probs, test.labels, steps, test.lengths, patch, grid)
    rule = next((r for r in curve if r.threshold == threshold), None) if known else None
    return TestFigures(result, rule, curve)


def _try_load(run: Run, row, on) -> tuple[SequenceLSTM | Ensemble | None, str | None]:
    """(model, None), or (None, a sentence saying what is missing)."""
    who = f"trial {row['trial_id']} ({row['name']})"
    if not row["checkpoint"]:
        return None, f"{who} recorded no checkpoint."
    path = run.path / row["checkpoint"]
    if not path.is_file():
        return None, f"{who}: checkpoint {row['checkpoint']} is missing."
    try:
        return load_model(path, on), None
    except Exception as exc:  # corrupt or foreign file: report it, do not crash
        return None, f"{who}: checkpoint {row['checkpoint']} could not be read ({exc})."


def evaluate_on_test(run: Run, chosen: pd.DataFrame) -> HeldOutResults:
    """Evaluate each chosen trial's best checkpoint on the run's test split."""
    held_out = HeldOutResults(
        pd.DataFrame(columns=["trial_id", *TEST_COLUMNS]),
        pd.DataFrame(columns=BY_STEP_COLUMNS),
        pd.DataFrame(columns=BY_SHARE_COLUMNS),
        pd.DataFrame(columns=TRADEOFF_COLUMNS),
        [],
    )
    if run.test is None:
        return held_out
    on = device()
    test = run.test.tensors(on)
    scores, by_step, by_share, tradeoff = [], [], [], []
    for _, row in chosen.iterrows():
        model, problem = _try_load(run, row, on)
        if model is None:
            held_out.notes.append(problem)
            continue
        figures = measure(model, test, row.get(m.VAL_THRESHOLD))
        result, rule = figures.result, figures.rule
        scores.append(
            {
                "trial_id": row["trial_id"],
                "test_acc": result.acc,
                "test_loss": result.loss,
                "test_area": result.area,
                **{
                    f"test_steps_to_{round(100 * level)}": result.first_step_reaching(level)
                    for level in LEVELS
                },
                "test_early_acc": rule.accuracy if rule else math.nan,
                "test_earliness": rule.earliness if rule else math.nan,
                "test_hm": rule.hm if rule else math.nan,
            }
        )
        who = {"label": row["name"], "trial_id": row["trial_id"]}
        by_step += [
            {**who, "step": t, "accuracy": acc} for t, acc in enumerate(result.acc_by_step, 1)
        ]
        by_share += [
            {**who, "share": share, "accuracy": acc}
            for share, acc in zip(SHARES, result.acc_by_share, strict=True)
        ]
        tradeoff += [
            {
                **who,
                "threshold": r.threshold,
                "accuracy": r.accuracy,
                "earliness": r.earliness,
                "hm": r.hm,
                "chosen": rule is not None and r.threshold == rule.threshold,
            }
            for r in figures.curve
        ]
    if scores:
        held_out.scores = pd.DataFrame(scores, columns=["trial_id", *TEST_COLUMNS])
        held_out.by_step = pd.DataFrame(by_step, columns=BY_STEP_COLUMNS)
        held_out.by_share = pd.DataFrame(by_share, columns=BY_SHARE_COLUMNS)
        held_out.tradeoff = pd.DataFrame(tradeoff, columns=TRADEOFF_COLUMNS)
    return held_out


def recognition_points(by_step: pd.DataFrame, levels=LEVELS) -> pd.DataFrame:
    """For each configuration, the first step after which test accuracy reaches each
    level (NaN: never), and its accuracy after its last step (the final accuracy)."""
    rows = []
    for (label, trial_id), curve in by_step.groupby(["label", "trial_id"], sort=False):
        row = {"label": label, "trial_id": trial_id}
        for level in levels:
            reached = curve.loc[curve["accuracy"] >= level, "step"]
            row[f"steps_to_{round(level * 100)}pct"] = reached.min() if len(reached) else math.nan
        row["final_accuracy"] = curve.sort_values("step")["accuracy"].iloc[-1]
        rows.append(row)
    return pd.DataFrame(rows)


def example_series(test: Split, classes: int, count: int = 3) -> list[int]:
    """Indices of `count` test series of different classes: the first of classes spread
    over the class indices, so the same series appear in every report of a test split."""
    labels = test.labels.tolist()
    wanted = np.linspace(0, classes - 1, count).round().astype(int) if count > 1 else [0]
    picks = []
    for cls in dict.fromkeys(int(c) for c in wanted):
        if cls in labels:
            picks.append(labels.index(cls))
    for i in range(len(labels)):  # a test split missing some classes: fill from the start
        if len(picks) >= count:
            break
        if i not in picks:
            picks.append(i)
    return picks[:count]


def series_probabilities(
    model: SequenceLSTM | Ensemble, test: Split, indices: list[int], classes: list
) -> pd.DataFrame:
    """Class probabilities after each of its own steps for some test series (long form):
    example, test_index, true_class, true_name, step, class, class_name, probability.
    `class` is the class index, `class_name` the label as the data wrote it."""
    on = next(model.parameters()).device
    part = test[torch.tensor(indices, dtype=torch.long)].tensors(on)
    probs = predict_proba(model, part).cpu().numpy()  # (N, S, C)
    own = steps_of(part.lengths, model.config.patch).cpu().numpy()  # (N,)
    n, steps, c = probs.shape
    example, t, k = (
        a.ravel() for a in np.meshgrid(range(n), range(steps), range(c), indexing="ij")
    )
    inside = t < own[example]  # a shorter series' steps past its end read only padding
    example, t, k = example[inside], t[inside], k[inside]
    index = np.asarray(indices)[example]
    true = test.labels[index].numpy()
    names = np.asarray([str(name) for name in classes], dtype=object)
    return pd.DataFrame(
        {
            "example": example,
            "test_index": index,
            "true_class": true,
            "true_name": names[true],
            "step": t + 1,
            "class": k,
            "class_name": names[k],
            "probability": probs.reshape(-1)[np.flatnonzero(inside)],
        }
    )


# ---------------------------------------------------------------- the search itself


def pareto_front(run: Run) -> pd.DataFrame:
    """A multi-objective run's Pareto front: the ranked trials that no other trial beats
    on every objective (their best epoch's figures), best first by the primary one.
    Empty for a single-objective run. Optuna decides dominance (`Study.best_trials`)."""
    objectives = run.objectives
    metrics = [metric for metric, _ in objectives]
    usable = ranked(run.trials, run.metric).dropna(subset=metrics)
    if len(objectives) < 2 or usable.empty:
        return usable.iloc[:0]
    with st.optuna_quiet():
        study = optuna.create_study(directions=st.directions(run.info.objective))
        for _, row in usable.iterrows():
            values = [float(row[metric]) for metric in metrics]
            study.add_trial(
                optuna.trial.create_trial(values=values, user_attrs={"id": row["trial_id"]})
            )
        front = {t.user_attrs["id"] for t in study.best_trials}
    return usable[usable["trial_id"].isin(front)]


def best_so_far_by_trial(run: Run, metric: str | None = None) -> pd.DataFrame:
    """Each trial's best validation `metric` (default: the run's primary objective) in
    start order, and the best up to it."""
    metric = metric or run.metric
    table = run.trials.sort_values("trial_number")
    table = table.assign(counted=table.index.isin(ranked(run.trials, run.metric).index))
    value = table[metric].where(table["counted"])
    return pd.DataFrame(
        {
            "trial_number": table["trial_number"],
            "trial_id": table["trial_id"],
            "status": table["status"],
            metric: value,
            "best_so_far": value.cummax().ffill(),
        }
    ).reset_index(drop=True)


def best_so_far_by_time(run: Run, metric: str | None = None) -> pd.DataFrame:
    """Best validation `metric` (default: the run's primary objective) reported by any
    trial up to each moment of the run."""
    metric = metric or run.metric
    bad = set(run.trials.loc[run.trials["status"] == TrialStatus.DIVERGED, "trial_id"])
    events = run.epochs[~run.epochs["trial_id"].isin(bad) & run.epochs[metric].notna()]
    events = events[~events[m.DIVERGED]].sort_values("wall_seconds")
    return pd.DataFrame(
        {
            "wall_seconds": events["wall_seconds"],
            "trial_id": events["trial_id"],
            metric: events[metric],
            "best_so_far": events[metric].cummax(),
        }
    ).reset_index(drop=True)


def learning_curves(run: Run, chosen: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy and training loss per epoch of the chosen configurations."""
    names = chosen.set_index("trial_id")["name"]
    curves = run.epochs[run.epochs["trial_id"].isin(names.index)]
    curves = curves.drop_duplicates(["trial_id", m.EPOCH], keep="last")
    order = {trial_id: i for i, trial_id in enumerate(names.index)}  # as `chosen`: best first
    curves = curves.assign(
        label=curves["trial_id"].map(names), _order=curves["trial_id"].map(order)
    )
    columns = ["label", "trial_id", m.EPOCH, m.VAL_ACC, m.VAL_LOSS, m.TRAIN_LOSS]
    return curves.sort_values(["_order", m.EPOCH])[columns].reset_index(drop=True)


def hyperparameters(run: Run, chosen: pd.DataFrame) -> pd.DataFrame:
    """The ranked trials' searched hyperparameters, validation accuracy and primary
    objective; `label` names the chosen ones (blank for the rest)."""
    names = chosen.set_index("trial_id")["name"]
    table = ranked(run.trials, run.metric)
    table = table.assign(label=table["trial_id"].map(names).fillna(""))
    figures = list(dict.fromkeys([m.VAL_ACC, run.metric]))
    columns = ["trial_id", "label", "status", *run.params, "epochs", *figures]
    return table[columns].reset_index(drop=True)


def epochs_reached(run: Run) -> pd.DataFrame:
    """How many trials ended at each epoch, by outcome: ASHA stops trials at its rungs."""
    counts = run.trials.groupby(["epochs", "status"]).size().rename("trials").reset_index()
    return counts.sort_values(["epochs", "status"]).reset_index(drop=True)


def importances(run: Run, seed: int = 0) -> tuple[pd.DataFrame, str, str]:
    """Optuna's fANOVA importances of the hyperparameters for the run's primary objective.

    They come from the search's own Optuna study: every trial it measured, including
    warm-start trials and, in a shared study, other searches' trials. A pruned trial
    counts with its best reported epoch, as in trials.csv. (A study that cannot be
    opened here: from trials.csv.) Returns (param, importance) rows, a sentence saying
    where they come from, and one saying why they are empty if they are.
    """
    points, source = _measured_points(run)
    if len(points) < 3 or len({value for _, value in points}) < 2:
        return (
            pd.DataFrame(columns=["param", "importance"]),
            source,
            ("Too few finished trials with different accuracies to estimate importances."),
        )
    with st.optuna_quiet():
        space = run.space.distributions()
        study = optuna.create_study(direction="maximize")
        for params, value in points:
            study.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions={k: space[k] for k in params}, value=value
                )
            )
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    table = pd.DataFrame({"param": list(found), "importance": list(found.values())})
    return table, source, ""


STUDY_SOURCES = ("this run", "warm start", "another search")


def study_history(run: Run) -> pd.DataFrame:
    """The run's Optuna study in its own order: every measured trial (pruned ones at their
    best reported epoch), where it came from (STUDY_SOURCES) and the best primary
    objective so far. Empty for runs without a reachable study."""
    columns = ["study_trial", "source", "state", "value", "best_so_far"]
    study, _ = run.study
    if study is None:
        return pd.DataFrame(columns=columns)
    mine = {t.number for t in st.own_trials(study, run.info.study.run)}
    rows = []
    for trial, value in _measured(study):
        if trial.number in mine:
            source = STUDY_SOURCES[0]
        elif "warm_start_from" in trial.user_attrs:
            source = STUDY_SOURCES[1]
        else:
            source = STUDY_SOURCES[2]
        rows.append((trial.number, source, trial.state.name, value))
    table = pd.DataFrame(rows, columns=columns[:-1]).sort_values("study_trial")
    return table.assign(best_so_far=table["value"].cummax()).reset_index(drop=True)


def _measured(study: optuna.Study) -> Iterator[tuple[optuna.trial.FrozenTrial, float]]:
    """(trial, primary objective at its best epoch) of each measured trial of `study`."""
    for trial in study.get_trials(deepcopy=False, states=st.WARM_STATES):
        if trial.state is TrialState.COMPLETE:
            yield trial, float(trial.values[0])
        elif trial.intermediate_values:  # only single-objective studies keep them
            yield trial, float(max(trial.intermediate_values.values()))


def _measured_points(run: Run) -> tuple[list[tuple[dict, float]], str]:
    """(hyperparameters, primary objective at the best epoch) of every measured trial,
    and in words where they come from."""
    study, why_not = run.study
    if study is None:
        space = run.space.distributions()
        points = [
            ({k: _plain(row[k], space[k]) for k in run.params}, float(row[run.metric]))
            for _, row in ranked(run.trials, run.metric).iterrows()
        ]
        return points, f"a study rebuilt from {TRIALS_CSV} ({why_not})"
    points = [(trial.params, value) for trial, value in _measured(study)]
    own = len(st.own_trials(study, run.info.study.run, states=st.WARM_STATES))
    return points, (
        f"the search's Optuna study: {len(points)} measured trials, {own} of them this run's"
    )


def _plain(value, distribution):
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return type(distribution.choices[0])(value)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return int(value)
    return float(value)


def _space_file(space: dict) -> str | None:
    """A --space file's tables as run.json keeps them; None for the default ranges."""
    return json.dumps(space["overrides"]) if "overrides" in space else None


def environment(info: RunRecord) -> pd.DataFrame:
    """What a reader needs to reproduce the run, as (item, value) rows."""
    data = info.data
    rows = [
        ("command", info.command),
        ("seed", info.seed),
        ("dataset", info.dataset),
        ("data: fingerprint", data["fingerprint"]),
        ("data: classes", ", ".join(map(str, data["classes"]))),
        ("data: values per time point", data["features"]),
        ("data: longest series (time points)", data["length"]),
        ("data: equal lengths", data["equal_length"]),
        ("data: images read row by row", data["image"]),
        ("data: selection", data["selection"]),
        ("split sizes", _join(info.split_sizes)),
        ("search space: patches", ", ".join(map(str, info.space["patches"]))),
        # A --space file's tables (none: the default ranges).
        ("search space: --space file", _space_file(info.space)),
        ("started", info.started),
        ("finished", info.finished),
        ("wall time (s)", info.wall_seconds),
    ]
    rows += [(f"machine: {k}", v) for k, v in info.machine.items()]
    rows += [(f"package: {k}", v) for k, v in info.packages.items()]
    rows += [(f"flag: --{k.replace('_', '-')}", v) for k, v in info.flags.items()]
    return pd.DataFrame(
        [(item, "(not set)" if value is None else str(value)) for item, value in rows],
        columns=["item", "value"],
        dtype=object,
    )


def _join(values: dict) -> str:
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in values.items())
