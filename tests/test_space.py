import math

import optuna

from search.space import BATCH_SIZES, PARAMS, SEED_CONFIG, is_seed, sample


def draw(n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        sample(trial)
        configs.append(trial.params)
        study.tell(trial, 0.0)
    return configs


def test_samples_stay_in_bounds_and_cover_them():
    configs = draw(300)
    assert all(set(c) == set(PARAMS) for c in configs)
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
