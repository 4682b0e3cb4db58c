"""The search space, defined once as an Optuna define-by-run function.

Ray Tune's OptunaSearch samples it for every trial; a plain Optuna study (the benchmark
baseline) can call it unchanged. It only samples: models are built later from the plain
values it returns.
"""

from __future__ import annotations

import optuna

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


def is_seed(config: dict) -> bool:
    """True for the tutorial's configuration (continuous values compared exactly on purpose:
    TPE never re-draws them bit for bit, so only the enqueued trial matches)."""
    return all(config.get(k) == v for k, v in SEED_CONFIG.items())
