"""The mutation sampler (tests/mutation_sample.py) picks and scores what docs/testing.md says."""

from tests.mutation_sample import module_of, sample, scores


def test_mutants_are_grouped_by_their_module():
    assert module_of("search.confirm.x_confirm__mutmut_12") == "search.confirm"
    assert module_of("models.lstm.xǁEnsembleǁforward__mutmut_5") == "models.lstm"
    assert module_of("analysis.results.x__plain__mutmut_1") == "analysis.results"


def test_a_seeded_sample_takes_the_same_mutants_per_module_and_small_modules_whole():
    names = [f"big.x_f__mutmut_{i}" for i in range(100)] + ["small.x_g__mutmut_1"]
    picked = sample(names, per_module=10, seed=3)
    assert picked == sample(list(reversed(names)), per_module=10, seed=3)
    assert picked != sample(names, per_module=10, seed=4)
    assert sum(module_of(n) == "big" for n in picked) == 10
    assert "small.x_g__mutmut_1" in picked


def test_scores_count_kills_over_the_mutants_run():
    statuses = {
        "a.x_f__mutmut_1": "killed",
        "a.x_f__mutmut_2": "survived",
        "a.x_f__mutmut_3": "timeout",
        "a.x_f__mutmut_4": "not checked",
        "b.x_g__mutmut_1": "no tests",
    }
    assert scores(statuses, list(statuses)) == [("a", 1, 3, 1), ("b", 0, 1, 0)]
