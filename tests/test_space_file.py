"""A --space file narrows, widens or fixes the hyperparameters: read, checked, searched,
recorded and signed; the tutorial's configuration is tried only where the space holds it."""

from __future__ import annotations

import json

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search import study as st
from search.config import SearchConfig
from search.errors import UserError
from search.run_folder import TRIALS_CSV, read_trials
from search.space import (
    LIMITS,
    PARAMS,
    SEED_CONFIG,
    SEED_LABEL,
    SearchSpace,
    read_points,
    read_space,
)
from search.storage import RunLocation
from tests.conftest import write_idx_folder
from tests.test_resume import base_args, run_search
from tests.test_space import draw

# The example: a wider, log-uniform width and a fixed batch size.
EXAMPLE = """
[hidden_size]
low = 64
high = 512
log = true

[batch_size]
value = 64
"""

# Every range narrowed, the tutorial's configuration left out (its width and rate).
NARROW = """
[num_layers]
low = 1
high = 2

[hidden_size]
low = 16
high = 32
log = true

[dropout]
low = 0.1
high = 0.2

[forget_bias]
low = 0.5
high = 1.5

[lr]
low = 2e-3
high = 5e-3
log = true

[batch_size]
choices = [64, 128]
"""


def space_file(tmp_path, text: str, name: str = "space.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_example_widens_one_range_fixes_another_and_keeps_the_rest(tmp_path):
    space = SearchSpace.for_length(28, space_file(tmp_path, EXAMPLE))
    configs = draw(200, space=space)
    hidden = [c["hidden_size"] for c in configs]
    assert min(hidden) >= 64 and max(hidden) <= 512
    assert max(hidden) > 256  # wider than the default's 256
    assert 0.35 < sum(h < 181 for h in hidden) / len(hidden) < 0.65  # log-uniform: 181²≈64·512
    assert {c["batch_size"] for c in configs} == {64}  # fixed, and in every configuration
    assert {c["num_layers"] for c in configs} == {1, 2, 3}  # left out: the default range
    assert all(0.0 <= c["dropout"] <= 0.5 for c in configs)
    assert set(configs[0]) == set(SEED_CONFIG)  # MNIST's rows: still no patch
    # The tutorial's batch of 100 is outside it: not tried first.
    assert not space.contains(space.seed_config)


def test_a_file_that_narrows_every_range_keeps_every_draw_inside(tmp_path):
    space = SearchSpace.for_length(
        150, space_file(tmp_path, NARROW + "[patch]\nchoices = [8, 16]")
    )
    for c in draw(200, space=space):
        assert 1 <= c["num_layers"] <= 2 and 16 <= c["hidden_size"] <= 32
        assert 0.1 <= c["dropout"] <= 0.2 and 0.5 <= c["forget_bias"] <= 1.5
        assert 2e-3 <= c["lr"] <= 5e-3 and c["batch_size"] in (64, 128)
        assert c["patch"] in (8, 16)
    assert space.patches == (8, 16) and space.seed_config["patch"] == 8  # 19 steps of 8


def test_an_empty_file_is_the_default_space(tmp_path):
    for length in (28, 150):
        given = SearchSpace.for_length(length, space_file(tmp_path, ""))
        assert given.distributions() == SearchSpace.for_length(length).distributions()


def test_a_fixed_patch_reaches_every_configuration(tmp_path):
    # Even on MNIST's short rows, where the default space reads one row per step.
    space = SearchSpace.for_length(28, space_file(tmp_path, "[patch]\nvalue = 4"))
    assert "patch" in space.params and {c["patch"] for c in draw(5, space=space)} == {4}
    assert space.seed_config == SEED_CONFIG | {"patch": 4}


def test_the_tutorial_is_tried_first_only_inside_the_space(tmp_path):
    from search.tuner import first_points

    assert first_points(SearchSpace()) == [SEED_CONFIG]
    inside = SearchSpace.for_length(28, space_file(tmp_path, "[lr]\nlow = 1e-3\nhigh = 0.1"))
    assert first_points(inside) == [SEED_CONFIG]  # on its edge is inside
    for table in ("[lr]\nlow = 2e-3\nhigh = 0.1", "[batch_size]\nchoices = [32, 64]"):
        outside = SearchSpace.for_length(28, space_file(tmp_path, table))
        assert first_points(outside) == [], table


def test_the_file_is_recorded_and_read_back(tmp_path):
    space = SearchSpace.for_length(150, space_file(tmp_path, EXAMPLE + "[patch]\nvalue = 8"))
    recorded = json.loads(json.dumps(space.to_dict()))  # as run.json holds it
    assert recorded == {
        "patches": [8],
        "length": 150,
        "overrides": {
            "hidden_size": {"low": 64, "high": 512, "log": True},
            "batch_size": {"value": 64},
            "patch": {"value": 8},
        },
    }
    assert SearchSpace.from_dict(recorded) == space
    assert SearchSpace.from_dict(recorded).distributions() == space.distributions()
    # The default space's record is what it was before there were files.
    assert SearchSpace().to_dict() == {"patches": [1], "length": 28}


def test_a_file_changes_the_signature_and_a_study_of_another_space_is_refused(tmp_path):
    default = st.signature("mnist-5k", "last", "accuracy", SearchSpace())
    example = SearchSpace.for_length(28, space_file(tmp_path, EXAMPLE))
    changed = st.signature("mnist-5k", "last", "accuracy", example)
    assert {k for k in PARAMS if default["space"].get(k) != changed["space"].get(k)} == {
        "hidden_size",
        "batch_size",
    }
    ref = st.StudyRef.in_run_folder(tmp_path, "study")
    st.prepare(ref, default)
    # Joining the study (--study-name) or warm-starting from it (--warm-start) both check it.
    differs = r"was made for another search space \(differs in batch_size, hidden_size\)$"
    with pytest.raises(UserError, match=f"^study 'study' in .*{differs}"):
        st.prepare(ref, changed)
    warm = SearchConfig(study_storage=ref.url, warm_start=["study"])
    with pytest.raises(UserError, match=f"^--warm-start study {differs}"):
        st.warm_start_sources(warm, RunLocation.open(str(tmp_path / "runs"), "b"), changed)
    # The same file again is the same search.
    again = SearchSpace.for_length(28, space_file(tmp_path, EXAMPLE, "copy.toml"))
    st.prepare(st.StudyRef.in_run_folder(tmp_path, "other"), changed)
    st.prepare(
        st.StudyRef.in_run_folder(tmp_path, "other"),
        st.signature("mnist-5k", "last", "accuracy", again),
    )


def test_enqueued_points_must_take_the_files_choices(tmp_path):
    space = SearchSpace.for_length(28, space_file(tmp_path, EXAMPLE))
    points = tmp_path / "points.json"
    points.write_text(json.dumps([SEED_CONFIG]))
    with pytest.raises(
        UserError, match=r"entry 0: batch_size 100 is not one of this space's \[64\]"
    ):
        read_points(points, space)
    points.write_text(json.dumps([SEED_CONFIG | {"batch_size": 64, "hidden_size": 1000}]))
    assert read_points(points, space)[0]["hidden_size"] == 1000  # a range's outside is tried


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[hiden_size]\nvalue = 64", r"unknown hyperparameter 'hiden_size' \(known: num_layers"),
        ("hidden_size = 64", r"hidden_size must be a table \(\[hidden_size\] with low and high"),
        (
            "[lr]\nlow = 1e-3",
            r"\[lr\] takes low and high \(and log\), choices, or value; it has low",
        ),
        ("[lr]\nvalue = 1e-3\nlow = 0.1", r"\[lr\] takes low and high .*it has value, low"),
        ("[lr]\nlo = 1e-3\nhigh = 0.1", r"it has lo, high"),
        ("[lr]", r"\[lr\] takes .* it has nothing"),
        (
            "[num_layers]\nlow = 0\nhigh = 3",
            r"\[num_layers\] low 0 is outside what the model "
            r"takes \(num_layers >= 1\)",
        ),
        ("[hidden_size]\nvalue = 0", r"\[hidden_size\] value 0 is outside .*hidden_size >= 1"),
        ("[dropout]\nlow = 0\nhigh = 1", r"\[dropout\] high 1 is outside .*0 <= dropout < 1"),
        ("[dropout]\nvalue = -0.1", r"\[dropout\] value -0.1 is outside"),
        ("[dropout]\nvalue = 1.5", r"\[dropout\] value 1.5 is outside"),
        ("[lr]\nvalue = 0", r"\[lr\] value 0 is outside what the model takes \(lr > 0\)"),
        ("[batch_size]\nchoices = [64, 0]", r"\[batch_size\] choice 0 is outside .*>= 1\)"),
        ("[patch]\nchoices = [4, 3]", r"\[patch\] choice 3 is outside .*patch one of 1, 2, 4"),
        ("[patch]\nlow = 2\nhigh = 8", r"\[patch\] takes choices or value \(patch one of 1,"),
        ("[hidden_size]\nlow = 8.5\nhigh = 64", r"\[hidden_size\] low 8.5 is not a whole number"),
        ("[num_layers]\nvalue = true", r"\[num_layers\] value True is not a whole number"),
        ("[lr]\nlow = 1e-4\nhigh = inf", r"\[lr\] high inf is not a finite number"),
        ("[lr]\nvalue = '0.001'", r"\[lr\] value '0.001' is not a finite number"),
        ("[lr]\nlow = 0.1\nhigh = 0.01", r"\[lr\] low 0.1 is not below high 0.01"),
        ("[hidden_size]\nlow = 64\nhigh = 64", r"low 64 is not below high 64 \(value = \.\.\."),
        ("[forget_bias]\nlow = 0\nhigh = 2\nlog = true", r"log = true needs low above 0, not 0"),
        ("[lr]\nlow = 1e-4\nhigh = 0.1\nlog = 1", r"\[lr\] log must be true or false, not 1"),
        ("[batch_size]\nchoices = []", r"\[batch_size\] choices must be a list of one value"),
        ("[batch_size]\nchoices = 64", r"choices must be a list"),
        ("[lr\nvalue = 1", r"is not valid TOML: "),
    ],
)
def test_a_bad_space_file_says_what_is_wrong_in_one_line(tmp_path, text, says):
    path = space_file(tmp_path, text)
    with pytest.raises(UserError, match=says) as refused:
        read_space(path)
    assert str(refused.value).startswith(f"--space file {path}")
    assert "\n" not in str(refused.value)


def test_an_unreadable_space_file_says_why(tmp_path):
    with pytest.raises(UserError, match=r"cannot read --space file .*none.toml: No such file"):
        read_space(tmp_path / "none.toml")
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(UserError, match="latin1.toml is not valid TOML"):
        read_space(tmp_path / "latin1.toml")


def test_the_edges_the_model_takes_are_accepted(tmp_path):
    text = (
        "[num_layers]\nvalue = 1\n[hidden_size]\nlow = 1\nhigh = 4096\nlog = true\n"
        "[dropout]\nlow = 0\nhigh = 0.99\n[forget_bias]\nlow = -5\nhigh = 5\n"
        "[lr]\nlow = 1e-9\nhigh = 10\nlog = true\n[batch_size]\nlow = 1\nhigh = 1024\n"
        "[patch]\nchoices = [1, 64]"
    )
    dims = read_space(space_file(tmp_path, text))
    assert list(dims) == list(PARAMS)
    assert dims["dropout"].low == 0.0 and isinstance(dims["dropout"].low, float)
    assert dims["batch_size"].distribution(integer=True) == IntDistribution(1, 1024)


def test_the_limits_are_the_models():
    from models.lstm import LSTMConfig  # torch: only here

    # At each limit the model builds; one step past it, it refuses, as the space does.
    for name, inside, outside in [
        ("num_layers", 1, 0),
        ("hidden_size", 1, 0),
        ("dropout", 0.0, -0.01),
        ("dropout", 0.99, 1.0),
        ("patch", 1, 0),
    ]:
        LSTMConfig(**{name: inside})
        with pytest.raises(ValueError, match=name):
            LSTMConfig(**{name: outside})
        assert LIMITS[name][0](inside) and not LIMITS[name][0](outside), name


def test_the_default_space_is_the_one_studies_were_signed_with():
    # Every study's signature is made of these: a change would refuse every earlier study.
    assert SearchSpace.for_length(150).distributions() == {
        "num_layers": IntDistribution(1, 3),
        "hidden_size": IntDistribution(16, 256, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "forget_bias": FloatDistribution(0.0, 3.0),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution((32, 64, 100, 128, 256)),
        "patch": CategoricalDistribution((4, 8, 16)),
    }
    assert list(SearchSpace().distributions()) == list(SEED_CONFIG)  # no patch on 28 rows


@pytest.mark.e2e
def test_a_search_in_a_narrowed_space_stays_inside_it(tmp_path):
    """Three one-epoch trials on 300 digits, in a space that leaves the tutorial out."""
    data_dir = write_idx_folder(tmp_path / "digits", n_train=300, n_test=50)
    path = space_file(tmp_path, NARROW)
    args = base_args(tmp_path, "narrow", "--dataset", "mnist", "--data-dir", str(data_dir))
    args += ["--space", str(path), "--trials", "3", "--max-epochs", "1", "--cv-folds", "0"]
    args += ["--asha-time", "epochs", "--confirm-top", "0", "--no-report", "--seed", "1"]
    code, out, err = run_search(*args)
    assert code == 0, err[-3000:]
    run_dir = tmp_path / "runs" / "narrow"
    table = read_trials(run_dir / TRIALS_CSV)
    assert len(table) == 3 and set(table["status"]) == {"completed"}
    space = read_space(path)
    for _, row in table.iterrows():
        for name, dimension in space.items():
            assert dimension.holds(row[name]), (row["trial_id"], name, row[name])
    assert SEED_LABEL not in set(table["label"])  # the tutorial's lies outside: not tried
    info = json.loads((run_dir / "run.json").read_text())
    assert info["space"]["overrides"] == {n: d.to_dict() for n, d in space.items()}
    assert info["flags"]["space"] == str(path)
