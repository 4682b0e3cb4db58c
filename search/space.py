"""The search space, defined once as an Optuna define-by-run function.

Ray Tune's OptunaSearch samples it for every trial; a plain Optuna study (the benchmark
baseline) can call it unchanged. It only samples: models are built later from the plain
values it returns.

The data shapes one hyperparameter: on long series, how many consecutive time points a
step reads (`patch`): an LSTM that reads a 1,000-point series one value at a time is slow
and forgets. Short series (MNIST's 28 rows among them) read one time point per step and
the space does not search it. Which patch is best differs from set to set, so it is
searched rather than fixed (benchmark 16: the tutorial's network, 5-fold cross-validation,
six epochs: on ArrowHead's 251 points patch 32 was best on test (0.794, patch 2: 0.697);
on GunPoint's 150 patch 8 (19 steps) scored what patch 2 (75 steps) did, 0.973, and
patch 1 (150 steps) 0.967; on BasicMotions' 100 patches 2 and 4 scored 1.000, patch 1
0.975). An epoch costs about as much more as it reads steps more (GunPoint: 5.4 s at 150
steps, 0.66 s at 19), and an epoch is what ASHA waits for before it judges a trial:
patches finer than 64 steps cost a search minutes for no measured gain.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import optuna

from search.errors import UserError

# The tutorial's batch of 100 is added to the powers of two so that its configuration
# (SEED_CONFIG) is a point of the space and can be enqueued as the first trial.
BATCH_SIZES = (32, 64, 100, 128, 256)

# The tutorial's own network: always trial 0, labelled "seed" in results.
SEED_CONFIG = {
    "num_layers": 1,
    "hidden_size": 128,
    "dropout": 0.0,
    "forget_bias": 1.0,
    "lr": 1e-3,
    "batch_size": 100,
}
SEED_LABEL = "seed"
# Every hyperparameter, in display order; `patch` only where the data is long.
PARAMS = (*SEED_CONFIG, "patch")
DEFAULTS = {"patch": 1}  # a hyperparameter a space does not search takes this value

# Patches: searched on series longer than LONG_SERIES time points, among the powers of two
# that leave between MIN_STEPS and MAX_STEPS steps. The tutorial's configuration reads
# its 28 rows in 28 steps: on long series it reads the patch closest to that.
LONG_SERIES = 64
TUTORIAL_STEPS = 28
PATCHES = (1, 2, 4, 8, 16, 32, 64)
MIN_STEPS, MAX_STEPS = 8, 64


def patch_choices(length: int) -> tuple[int, ...]:
    """The patches a space offers for series of up to `length` time points."""
    if length <= LONG_SERIES:
        return (1,)
    fitting = tuple(p for p in PATCHES if MIN_STEPS <= math.ceil(length / p) <= MAX_STEPS)
    return fitting or (max(p for p in PATCHES if math.ceil(length / p) >= MIN_STEPS),)


@dataclass(frozen=True)
class SearchSpace:
    """The space for one dataset: fixed ranges, and the patches its length allows."""

    patches: tuple[int, ...] = (1,)
    length: int = 28  # the longest series' time points

    @classmethod
    def for_length(cls, length: int) -> SearchSpace:
        return cls(patch_choices(length), length)

    def __call__(self, trial: optuna.Trial) -> None:
        """Draw one configuration's hyperparameters from `trial`."""
        trial.suggest_int("num_layers", 1, 3)
        trial.suggest_int("hidden_size", 16, 256, log=True)
        trial.suggest_float("dropout", 0.0, 0.5)
        trial.suggest_float("forget_bias", 0.0, 3.0)
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.suggest_categorical("batch_size", BATCH_SIZES)
        if len(self.patches) > 1:
            trial.suggest_categorical("patch", self.patches)

    @property
    def params(self) -> tuple[str, ...]:
        """The hyperparameters this space searches."""
        return tuple(p for p in PARAMS if p != "patch" or len(self.patches) > 1)

    @property
    def seed_config(self) -> dict:
        """The tutorial's configuration, reading the series in about its 28 steps."""
        if len(self.patches) == 1:
            return dict(SEED_CONFIG)
        steps = {p: math.ceil(self.length / p) for p in self.patches}
        patch = min(self.patches, key=lambda p: abs(math.log(steps[p] / TUTORIAL_STEPS)))
        return SEED_CONFIG | {"patch": patch}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Each hyperparameter's Optuna distribution, read from the sampler itself (the one
        place the bounds and scales live), for code that needs them without searching."""
        trial = optuna.trial.FixedTrial(self.seed_config)
        self(trial)
        return dict(trial.distributions)

    def to_dict(self) -> dict:
        return {"patches": list(self.patches), "length": self.length}

    @classmethod
    def from_dict(cls, values: dict) -> SearchSpace:
        return cls(tuple(int(p) for p in values["patches"]), int(values["length"]))


def hyperparameters(config: dict) -> dict:
    """Every hyperparameter of a trial's `config`, the unsearched at their defaults."""
    return {k: config.get(k, DEFAULTS.get(k)) for k in PARAMS}


def log_scaled() -> set[str]:
    """The hyperparameters sampled on a log scale (plotted on one too)."""
    return {name for name, d in SearchSpace().distributions().items() if getattr(d, "log", False)}


# How a hyperparameter's value is written for a reader: the CLI's summary, the reports
# and the benchmarks all show configurations this way.
_FORMATS = {
    "num_layers": "{:.0f}",
    "hidden_size": "{:.0f}",
    "dropout": "{:.2f}",
    "forget_bias": "{:.2f}",
    "lr": "{:.1e}",
    "batch_size": "{:.0f}",
    "patch": "{:.0f}",
}


def format_param(name: str, value) -> str:
    """`value` of hyperparameter `name` as shown to a reader ("" when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _FORMATS[name].format(float(value))


def is_seed(config: dict) -> bool:
    """True for the tutorial's configuration (continuous values compared exactly on purpose:
    TPE never re-draws them bit for bit, so only the enqueued trial matches)."""
    return all(config.get(k) == v for k, v in SEED_CONFIG.items())


def read_points(path: Path, space: SearchSpace) -> list[dict]:
    """Configurations a user asks to try first: a JSON list of {param: value} objects."""
    try:
        points = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read --enqueue file {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"--enqueue file {path} is not valid JSON: {exc}") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise UserError(f"--enqueue file {path} must hold a JSON list of objects")
    for i, point in enumerate(points):
        if set(point) != set(space.params):
            raise UserError(
                f"--enqueue file {path}, entry {i}: needs exactly the keys "
                f"{', '.join(space.params)}"
            )
        bad = [k for k, v in point.items() if not _is_finite_number(v)]
        if bad:
            raise UserError(f"--enqueue file {path}, entry {i}: {bad[0]} is not a number")
        if "patch" in point and point["patch"] not in space.patches:
            raise UserError(
                f"--enqueue file {path}, entry {i}: patch {point['patch']} is not one of "
                f"this data's {list(space.patches)}"
            )
    return points


def _is_finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
