"""The search space, defined once as an Optuna define-by-run function.

Our Tune searcher (`search/searcher.py`, on Optuna's ask and tell) calls it for every
trial; a plain Optuna study (the benchmark baseline) can call it unchanged. It only
samples: models are built later from the plain values it returns.

Each hyperparameter has a default range (`RANGES`). A `--space` file narrows, widens or
fixes any of them, one TOML table each (`read_space`); the rest keep their default. The
file is checked against what the model can take (`LIMITS`) before anything runs.

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
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search.errors import UserError

# The tutorial's batch of 100 is added to the powers of two so that its configuration
# (SEED_CONFIG) is a point of the space and can be enqueued as the first trial.
BATCH_SIZES = (32, 64, 100, 128, 256)

# The tutorial's own network: trial 0 wherever the space holds it, labelled "seed" in
# results.
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
INTEGERS = frozenset({"num_layers", "hidden_size", "batch_size", "patch"})

# Patches: searched on series longer than LONG_SERIES time points, among the powers of two
# that leave between MIN_STEPS and MAX_STEPS steps. The tutorial's configuration reads
# its 28 rows in 28 steps: on long series it reads the patch closest to that.
LONG_SERIES = 64
TUTORIAL_STEPS = 28
PATCHES = (1, 2, 4, 8, 16, 32, 64)
MIN_STEPS, MAX_STEPS = 8, 64

# What the model and its training take, and in words. A --space file stays inside them.
# models/lstm.py's LSTMConfig checks the first three and patch >= 1 itself (a test holds
# these to it); Adam refuses a negative rate, and a rate of 0 learns nothing; the space
# offers only the patches above.
LIMITS: dict[str, tuple[Callable[[float], bool], str]] = {
    "num_layers": (lambda v: v >= 1, "num_layers >= 1"),
    "hidden_size": (lambda v: v >= 1, "hidden_size >= 1"),
    "dropout": (lambda v: 0 <= v < 1, "0 <= dropout < 1"),
    "forget_bias": (lambda v: True, "any number"),
    "lr": (lambda v: v > 0, "lr > 0"),
    "batch_size": (lambda v: v >= 1, "batch_size >= 1"),
    "patch": (lambda v: v in PATCHES, f"patch one of {', '.join(map(str, PATCHES))}"),
}


def patch_choices(length: int) -> tuple[int, ...]:
    """The patches a space offers for series of up to `length` time points."""
    if length <= LONG_SERIES:
        return (1,)
    fitting = tuple(p for p in PATCHES if MIN_STEPS <= math.ceil(length / p) <= MAX_STEPS)
    return fitting or (max(p for p in PATCHES if math.ceil(length / p) >= MIN_STEPS),)


@dataclass(frozen=True)
class Dimension:
    """The values of one hyperparameter: `low` to `high` (log-uniform with `log`), or one
    of `choices`; a single choice fixes it."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def distribution(self, integer: bool) -> BaseDistribution:
        """Optuna's distribution of these values (of whole numbers if `integer`)."""
        if self.choices:
            return CategoricalDistribution(self.choices)
        if integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)

    def holds(self, value) -> bool:
        if self.choices:
            return value in self.choices
        return self.low <= value <= self.high

    def to_dict(self) -> dict:
        """As a --space file's table writes it."""
        if len(self.choices) == 1:
            return {"value": self.choices[0]}
        if self.choices:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high} | ({"log": True} if self.log else {})


# The default space. Changing a range changes every study's signature: warm starts and
# shared studies from before the change are then refused (search.study).
RANGES = {
    "num_layers": Dimension(1, 3),
    "hidden_size": Dimension(16, 256, log=True),
    "dropout": Dimension(0.0, 0.5),
    "forget_bias": Dimension(0.0, 3.0),
    "lr": Dimension(1e-4, 1e-2, log=True),
    "batch_size": Dimension(choices=BATCH_SIZES),
}


@dataclass(frozen=True)
class SearchSpace:
    """The space for one dataset: the default ranges changed by `overrides` (a --space
    file's tables), and the patches its length allows (or the file names)."""

    patches: tuple[int, ...] = (1,)
    length: int = 28  # the longest series' time points
    # (name, Dimension) pairs in PARAMS order. A tuple, with a default: a searcher
    # pickled by a version without it still reads, as the default space.
    overrides: tuple[tuple[str, Dimension], ...] = ()

    @classmethod
    def for_length(cls, length: int, file: Path | None = None) -> SearchSpace:
        """The space for series of `length` time points, changed where a --space `file`
        says (UserError, one line, if it says something the model cannot take)."""
        overrides = read_space(file) if file is not None else {}
        patches = overrides["patch"].choices if "patch" in overrides else patch_choices(length)
        return cls(patches, length, tuple(overrides.items()))

    def __call__(self, trial: optuna.Trial) -> None:
        """Draw one configuration's hyperparameters from `trial`."""
        for name, distribution in self.distributions().items():
            _suggest(trial, name, distribution)

    @property
    def params(self) -> tuple[str, ...]:
        """The hyperparameters this space searches (a fixed one among them: a trial's
        configuration holds every value it trains with)."""
        return tuple(p for p in PARAMS if p != "patch" or self.patches != (1,))

    def dimensions(self) -> dict[str, Dimension]:
        """Each hyperparameter's values, in PARAMS order."""
        every = RANGES | dict(self.overrides) | {"patch": Dimension(choices=self.patches)}
        return {name: every[name] for name in self.params}

    @property
    def seed_config(self) -> dict:
        """The tutorial's configuration, reading the series in about its 28 steps. Under a
        --space file it may lie outside the space (`contains`)."""
        if self.patches == (1,):
            return dict(SEED_CONFIG)
        steps = {p: math.ceil(self.length / p) for p in self.patches}
        patch = min(self.patches, key=lambda p: abs(math.log(steps[p] / TUTORIAL_STEPS)))
        return SEED_CONFIG | {"patch": patch}

    def contains(self, config: dict) -> bool:
        """Whether `config` is a point of this space."""
        return all(
            name in config and dimension.holds(config[name])
            for name, dimension in self.dimensions().items()
        )

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each hyperparameter's Optuna distribution: what the sampler draws from, for
        code that needs the bounds and scales without searching."""
        return {
            name: dimension.distribution(name in INTEGERS)
            for name, dimension in self.dimensions().items()
        }

    def to_dict(self) -> dict:
        values = {"patches": list(self.patches), "length": self.length}
        if self.overrides:  # the default space's record stays what it was before files
            values["overrides"] = {name: d.to_dict() for name, d in self.overrides}
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SearchSpace:
        overrides = _read_tables(values.get("overrides", {}), "the recorded space")
        patches = tuple(int(p) for p in values["patches"])
        return cls(patches, int(values["length"]), tuple(overrides.items()))


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> None:
    # Optuna's public API suggests by kind; a one-choice categorical (a fixed value) is
    # recorded without a draw.
    if isinstance(distribution, CategoricalDistribution):
        trial.suggest_categorical(name, distribution.choices)
    elif isinstance(distribution, IntDistribution):
        trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    else:
        trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


def read_space(path: Path) -> dict[str, Dimension]:
    """A --space file: one TOML table per hyperparameter it changes, with `low` and `high`
    (and `log = true`), `choices = [...]`, or `value = ...`. UserError, in one line, for
    a file that cannot be read or names values the model cannot take."""
    try:
        with open(path, "rb") as f:
            tables = tomllib.load(f)
    except OSError as exc:
        raise UserError(f"cannot read --space file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--space file {path} is not valid TOML: {exc}") from None
    return _read_tables(tables, f"--space file {path}")


def _read_tables(tables: dict, where: str) -> dict[str, Dimension]:
    unknown = [name for name in tables if name not in PARAMS]
    if unknown:
        raise UserError(
            f"{where}: unknown hyperparameter {unknown[0]!r} (known: {', '.join(PARAMS)})"
        )
    return {name: _dimension(name, tables[name], where) for name in PARAMS if name in tables}


# The keys a table may hold: one of these sets.
_FORMS = ({"low", "high"}, {"low", "high", "log"}, {"choices"}, {"value"})


def _dimension(name: str, table, where: str) -> Dimension:
    """Table `name` of a --space file, checked (`where` names the file in messages)."""
    at = f"{where}: [{name}]"
    if not isinstance(table, dict):
        raise UserError(
            f"{where}: {name} must be a table ([{name}] with low and high, choices or value)"
        )
    if set(table) not in _FORMS:
        raise UserError(
            f"{at} takes low and high (and log), choices, or value; "
            f"it has {', '.join(table) or 'nothing'}"
        )
    if name == "patch" and "low" in table:
        raise UserError(f"{at} takes choices or value ({LIMITS['patch'][1]})")
    if "choices" in table and not (isinstance(table["choices"], list) and table["choices"]):
        raise UserError(f"{at} choices must be a list of one value or more")
    values = (
        [("value", table["value"])]
        if "value" in table
        else [("choice", v) for v in table["choices"]]
        if "choices" in table
        else [("low", table["low"]), ("high", table["high"])]
    )
    allowed, words = LIMITS[name]
    numbers = []
    for key, value in values:
        number = _number(value, name in INTEGERS)
        if number is None:
            kind = "a whole number" if name in INTEGERS else "a finite number"
            raise UserError(f"{at} {key} {value!r} is not {kind}")
        if not allowed(number):
            raise UserError(f"{at} {key} {value} is outside what the model takes ({words})")
        numbers.append(number)
    if "value" in table or "choices" in table:
        return Dimension(choices=tuple(sorted(set(numbers))))
    low, high = numbers
    if low >= high:
        raise UserError(f"{at} low {low} is not below high {high} (value = ... fixes it)")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{at} log must be true or false, not {log!r}")
    if log and low <= 0:
        raise UserError(f"{at} log = true needs low above 0, not {low}")
    return Dimension(low, high, log=log)


def _number(value, integer: bool) -> float | None:
    """`value` as a whole number (`integer`) or a float; None if it is neither."""
    if not _is_finite_number(value):
        return None
    if integer:
        return value if isinstance(value, int) else None
    return float(value)


def hyperparameters(config: dict) -> dict:
    """Every hyperparameter of a trial's `config`, the unsearched at their defaults."""
    return {k: config.get(k, DEFAULTS.get(k)) for k in PARAMS}


def log_scaled(space: SearchSpace | None = None) -> set[str]:
    """The hyperparameters `space` (default: the default space) samples on a log scale;
    the report plots them on one too."""
    distributions = (space or SearchSpace()).distributions()
    return {name for name, d in distributions.items() if getattr(d, "log", False)}


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
        # A value outside a range is tried as asked (a test enqueues a diverging rate);
        # one that is not among a hyperparameter's choices, Optuna cannot record.
        for name, dimension in space.dimensions().items():
            if dimension.choices and point[name] not in dimension.choices:
                raise UserError(
                    f"--enqueue file {path}, entry {i}: {name} {point[name]} is not one of "
                    f"this space's {list(dimension.choices)}"
                )
    return points


def _is_finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
