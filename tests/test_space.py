import json
import math

import optuna
import pytest

from search.errors import UserError
from search.space import (
    BATCH_SIZES,
    SEED_CONFIG,
    SearchSpace,
    format_param,
    is_seed,
    log_scaled,
    read_points,
)

sample = SearchSpace()  # MNIST's: 28 rows, one per step


def draw(n: int, seed: int = 0, space: SearchSpace = sample) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        configs.append(trial.params)
        study.tell(trial, 0.0)
    return configs


def test_samples_stay_in_bounds_and_cover_them():
    configs = draw(300)
    assert all(set(c) == set(SEED_CONFIG) for c in configs)  # no patch on short series
    layers = {c["num_layers"] for c in configs}
    assert layers == {1, 2, 3}
    hidden = [c["hidden_size"] for c in configs]
    assert min(hidden) >= 16 and max(hidden) <= 256
    # Log-uniform width: about as many draws below 64 (the geometric middle) as above.
    below = sum(h < 64 for h in hidden) / len(hidden)
    assert 0.35 < below < 0.65
    assert all(0.0 <= c["dropout"] <= 0.5 for c in configs)
    assert all(0.0 <= c["forget_bias"] <= 3.0 for c in configs)
    lrs = [c["lr"] for c in configs]
    assert min(lrs) >= 1e-4 and max(lrs) <= 1e-2
    assert 0.35 < sum(lr < 1e-3 for lr in lrs) / len(lrs) < 0.65
    assert {c["batch_size"] for c in configs} == set(BATCH_SIZES)


def test_seed_config_is_the_tutorial_and_lies_in_the_space():
    assert SEED_CONFIG == {
        "num_layers": 1,
        "hidden_size": 128,
        "dropout": 0.0,
        "forget_bias": 1.0,
        "lr": 1e-3,
        "batch_size": 100,
    }
    study = optuna.create_study()
    study.enqueue_trial(SEED_CONFIG)
    trial = study.ask()
    sample(trial)
    assert trial.params == SEED_CONFIG
    assert is_seed(trial.params)


def test_is_seed_only_for_the_exact_tutorial_config():
    assert not any(is_seed(c) for c in draw(50))
    assert not is_seed({**SEED_CONFIG, "lr": math.nextafter(1e-3, 1)})


def test_long_series_search_the_patch_among_the_allowed_ones():
    space = SearchSpace.for_length(150)
    configs = draw(200, space=space)
    assert {c["patch"] for c in configs} == set(space.patches) == {4, 8, 16}  # 8-64 steps
    # The tutorial's configuration reads GunPoint's 150 points in 38 steps of 4.
    assert space.seed_config == {**SEED_CONFIG, "patch": 4}
    study = optuna.create_study()
    study.enqueue_trial(space.seed_config)
    trial = study.ask()
    space(trial)
    assert trial.params == space.seed_config and is_seed(trial.params)
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_enqueued_points_must_fit_the_space(tmp_path):
    space = SearchSpace.for_length(150)
    path = tmp_path / "points.json"
    path.write_text(
        '[{"num_layers": 1, "hidden_size": 64, "dropout": 0, "forget_bias": 1, '
        '"lr": 0.001, "batch_size": 32, "patch": 3}]'
    )
    with pytest.raises(UserError, match="patch 3 is not one of"):
        read_points(path, space)
    with pytest.raises(UserError, match="needs exactly the keys"):
        read_points(path, SearchSpace())  # MNIST's space has no patch


SEED_POINT = json.dumps(SEED_CONFIG)
LR_AS_TEXT = json.dumps({**SEED_CONFIG, "lr": "0.001"})


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, r"cannot read --enqueue file .*points.json: No such file or directory"),
        ("[{", r"--enqueue file .*points.json is not valid JSON: Expecting"),
        ('{"lr": 0.001}', r"--enqueue file .*points.json must hold a JSON list of objects"),
        ("[1, 2]", r"must hold a JSON list of objects"),
        ('[{"lr": 0.001}]', r"entry 0: needs exactly the keys num_layers, hidden_size, "),
        (f"[{SEED_POINT}, {LR_AS_TEXT}]", r"entry 1: lr is not a number"),
    ],
)
def test_a_bad_enqueue_file_says_what_is_wrong_with_it(tmp_path, content, says):
    path = tmp_path / "points.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=says):
        read_points(path, SearchSpace())


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1", None])
def test_an_enqueued_value_must_be_a_finite_number(tmp_path, value):
    path = tmp_path / "points.json"
    path.write_text(json.dumps([{**SEED_CONFIG, "dropout": value}]))
    with pytest.raises(UserError, match="entry 0: dropout is not a number"):
        read_points(path, SearchSpace())


def test_only_the_log_sampled_hyperparameters_are_plotted_on_a_log_scale():
    assert log_scaled() == {"hidden_size", "lr"}


def test_a_missing_value_is_shown_as_nothing():
    assert format_param("lr", None) == format_param("lr", math.nan) == ""
    assert format_param("lr", 0.001) == "1.0e-03" and format_param("dropout", 0.25) == "0.25"


def test_a_single_patch_is_still_read_by_every_trial():
    # Series too long for 64 steps at any patch offer only the coarsest; a configuration
    # without a patch would read them one time point per step.
    space = SearchSpace.for_length(10_000)
    assert space.patches == (64,) and "patch" in space.params
    assert space.seed_config == {**SEED_CONFIG, "patch": 64}
    assert {c["patch"] for c in draw(5, space=space)} == {64}


def test_a_space_file_sets_which_hyperparameters_are_on_a_log_scale(tmp_path):
    from search.space import log_scaled, read_space

    assert log_scaled() == {"hidden_size", "lr"}  # the default space's
    path = tmp_path / "space.toml"
    path.write_text(
        "[lr]\nlow = 0.001\nhigh = 0.01\n[dropout]\nlow = 0.01\nhigh = 0.5\nlog = true\n"
    )
    space = SearchSpace.for_length(28, path)
    assert log_scaled(space) == {"hidden_size", "dropout"}
    assert read_space(path)  # the same file, read as the flag reads it
