"""The search space, defined once as an Optuna define-by-run function.

Ray Tune's OptunaSearch samples it for every trial; a plain Optuna study (the benchmark
baseline) can call it unchanged. It only samples: models are built later from the plain
values it returns.
"""

from __future__ import annotations

import functools
import json
import math
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
PARAMS = tuple(SEED_CONFIG)  # hyperparameter names, in display order


def sample(trial: optuna.Trial) -> None:
    """Draw one configuration's hyperparameters from `trial`."""
    trial.suggest_int("num_layers", 1, 3)
    trial.suggest_int("hidden_size", 16, 256, log=True)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("forget_bias", 0.0, 3.0)
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("batch_size", BATCH_SIZES)


@functools.cache
def distributions() -> dict[str, optuna.distributions.BaseDistribution]:
    """Each hyperparameter's Optuna distribution, read from `sample` itself (the one place
    the bounds and scales live), for code that needs them without searching."""
    trial = optuna.trial.FixedTrial(SEED_CONFIG)  # any point of the space would do
    sample(trial)
    return dict(trial.distributions)


def log_scaled() -> set[str]:
    """The hyperparameters sampled on a log scale (plotted on one too)."""
    return {name for name, d in distributions().items() if getattr(d, "log", False)}


# How a hyperparameter's value is written for a reader: the CLI's summary, the reports
# and the benchmarks all show configurations this way.
_FORMATS = {
    "num_layers": "{:.0f}",
    "hidden_size": "{:.0f}",
    "dropout": "{:.2f}",
    "forget_bias": "{:.2f}",
    "lr": "{:.1e}",
    "batch_size": "{:.0f}",
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


def read_points(path: Path) -> list[dict]:
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
        if set(point) != set(PARAMS):
            raise UserError(
                f"--enqueue file {path}, entry {i}: needs exactly the keys {', '.join(PARAMS)}"
            )
        bad = [k for k, v in point.items() if not _is_finite_number(v)]
        if bad:
            raise UserError(f"--enqueue file {path}, entry {i}: {bad[0]} is not a number")
    return points


def _is_finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
