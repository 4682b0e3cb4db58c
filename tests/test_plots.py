"""Plot functions on hand-made frames: fast checks of what every report relies on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from analysis import plots
from analysis import results as res
from search.space import PARAMS, SearchSpace

STEPS = 28


def test_styles_give_each_configuration_one_colour_and_the_seed_black():
    names = ["#1: a", "#2: b", "#7 seed: c", "#3: d"]
    style = plots.styles(names, seed_name="#7 seed: c", short=["#1", "#2", "#7 seed", "#3"])
    assert style["#7 seed: c"]["color"] == "black"
    colours = [style[n]["color"] for n in names]
    assert len(set(colours)) == len(names)
    assert plots.styles(names, seed_name="#7 seed: c")["#3: d"]["color"] == style["#3: d"]["color"]


def by_step_frame(steps: dict[str, int], ends: dict[str, float]) -> pd.DataFrame:
    """Accuracy rising linearly to 100% at step `ends[label]`, over `steps[label]` steps."""
    return pd.DataFrame(
        [
            {"label": label, "trial_id": label, "step": t, "accuracy": min(1, t / ends[label])}
            for label in steps
            for t in range(1, steps[label] + 1)
        ]
    )


def test_figures_use_the_configuration_colours():
    by_step = by_step_frame(
        {"#1: fast": STEPS, "#2: slow": STEPS}, {"#1: fast": 9.5, "#2: slow": 29.5}
    )
    style = plots.styles(["#1: fast", "#2: slow"], short=["#1", "#2"])
    fig = plots.timestep_accuracy(by_step, style, "t", thresholds=(0.5, 0.9))
    for ax in fig.axes:
        drawn = {line.get_label(): line.get_color() for line in ax.get_lines()}
        assert drawn["#1: fast"] == style["#1: fast"]["color"]
        assert drawn["#2: slow"] == style["#2: slow"]["color"]
    points = res.recognition_points(by_step)
    assert points.set_index("label")["steps_to_90pct"].to_dict() == {"#1: fast": 9, "#2: slow": 27}
    assert points.set_index("label")["steps_to_50pct"].to_dict() == {"#1: fast": 5, "#2: slow": 15}


def test_step_curves_of_any_length_and_of_different_lengths_draw():
    # 200 steps against 50 (patches 1 and 4 of one series): each line keeps its own steps.
    by_step = by_step_frame({"#1: a": 200, "#2: b": 50}, {"#1: a": 150.0, "#2: b": 20.0})
    style = plots.styles(["#1: a", "#2: b"], short=["#1", "#2"])
    fig = plots.timestep_accuracy(by_step, style, "t", (0.5, 0.9), steps_word="steps")
    full = fig.axes[0]
    lengths = {line.get_label(): len(line.get_xdata()) for line in full.get_lines()}
    assert lengths["#1: a"] == 200 and lengths["#2: b"] == 50
    assert full.get_title(loc="left") == "All 200 steps"
    points = res.recognition_points(by_step)
    fig = plots.recognition_points(points, style, steps=200, steps_word="steps")
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[-1] == "never" and len(ticks) <= 16  # no 200 tick labels


def test_accuracy_by_share_runs_from_0_to_100_percent():
    shares = [round(0.05 * i, 2) for i in range(1, 21)]
    by_share = pd.DataFrame(
        [
            {"label": label, "trial_id": label, "share": s, "accuracy": s * top}
            for label, top in (("#1: a", 0.9), ("#2: b", 0.7))
            for s in shares
        ]
    )
    style = plots.styles(["#1: a", "#2: b"], short=["#1", "#2"])
    fig = plots.accuracy_by_share(by_share, style, "t")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["#1: a"].get_xdata()) == shares
    assert lines["#1: a"].get_color() == style["#1: a"]["color"]
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] >= 1.0


def test_tradeoff_marks_each_configurations_chosen_threshold():
    rows = []
    for label, chosen in (("#1: a", 0.9), ("#2 seed: b", 0.6)):
        for t in (0.0, 0.6, 0.9, 1.1):
            rows.append(
                {
                    "label": label,
                    "trial_id": label,
                    "threshold": t,
                    "accuracy": 0.5 + 0.4 * min(t, 1),
                    "earliness": min(t, 1),
                    "hm": 0.0,
                    "chosen": t == chosen,
                }
            )
    curves = pd.DataFrame(rows)
    style = plots.styles(["#1: a", "#2 seed: b"], seed_name="#2 seed: b", short=["#1", "#2"])
    fig = plots.tradeoff(curves, style, "t")
    ax = fig.axes[0]
    marked = [c for c in ax.collections if isinstance(c, PathCollection)]
    points = sorted(tuple(c.get_offsets()[0]) for c in marked)
    assert points == [(0.6, pytest.approx(0.74)), (0.9, pytest.approx(0.86))]
    drawn = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert drawn["#1: a"] == style["#1: a"]["color"] and drawn["#2 seed: b"] == "black"


def test_one_configuration_keeps_its_colour_in_every_figure():
    names = ["#1: a", "#2 seed (the tutorial's): b"]
    style = plots.styles(names, seed_name=names[1], short=["#1", "#2 seed"])
    curves = pd.DataFrame(
        {
            "label": [names[0]] * 2 + [names[1]] * 2,
            "trial_id": ["a", "a", "b", "b"],
            "epoch": [1, 2, 1, 2],
            "val_acc": [0.5, 0.7, 0.4, 0.6],
            "train_loss": [1.0, 0.5, 1.2, 0.8],
        }
    )
    fig = plots.learning_curves(curves, style)
    for ax in fig.axes:
        colours = [line.get_color() for line in ax.get_lines()]
        assert colours == [style[names[0]]["color"], "black"]
    points = pd.DataFrame(
        {
            "label": names,
            "trial_id": ["a", "b"],
            "steps_to_50pct": [3, float("nan")],
            "steps_to_90pct": [9, float("nan")],
        }
    )
    fig = plots.recognition_points(points, style, steps=STEPS)
    ticks = {t.get_text(): t.get_color() for t in fig.axes[0].get_yticklabels()}
    assert ticks == {names[0]: style[names[0]]["color"], names[1]: "black"}


def probabilities(steps: int, classes: list) -> pd.DataFrame:
    """One example's class probabilities after each step, the true class 1 rising."""
    rows = []
    for t in range(1, steps + 1):
        p = np.full(len(classes), (1 - t / steps) / len(classes))
        p[1] += t / steps
        rows += [
            {
                "example": 0,
                "test_index": 7,
                "true_class": 1,
                "true_name": str(classes[1]),
                "step": t,
                "class": k,
                "class_name": str(name),
                "probability": p[k],
            }
            for k, name in enumerate(classes)
        ]
    return pd.DataFrame(rows)


def test_series_reading_shows_at_most_28_steps_with_long_string_classes():
    classes = ["walking upstairs", "run", "cycle on an ergometer", "sit"]
    probs = probabilities(100, classes)
    values = np.random.default_rng(0).normal(size=(398, 3))  # 100 steps of 4, the last of 2
    fig = plots.series_reading(probs, values, 4, "#1: a", colour="#0173b2")
    texts = [t.get_text() for t in fig.axes[0].texts]
    steps = [t for t in texts if t.startswith("step ")]
    assert steps[0] == "step 1" and steps[-1] == "step 100" and len(steps) == plots.MAX_PANELS
    bars = {t.get_text() for t in fig.axes[0].texts if t.get_rotation() == 90}
    assert bars == {"walking u…", "run", "cycle on …", "sit"}  # long names cut, turned up
    assert plots.shown_steps(5) == [1, 2, 3, 4, 5]
    assert len(plots.shown_steps(1000)) == plots.MAX_PANELS


def test_digit_reading_draws_one_panel_per_row():
    probs = probabilities(28, list(range(10)))
    image = np.random.default_rng(0).integers(0, 256, size=(28, 28)).astype(np.uint8)
    fig = plots.digit_reading(probs, image, "#1: a")
    rows = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("row ")]
    assert rows == [f"row {t}" for t in range(1, 29)]


@pytest.mark.parametrize("patches", [(1,), (1, 2, 4)])
def test_hyperparameter_effects_has_one_panel_per_searched_parameter(patches):
    params = SearchSpace(patches).params
    rng = np.random.default_rng(0)
    table = pd.DataFrame({p: rng.choice([1, 2, 4], 8) for p in PARAMS}).assign(
        lr=rng.uniform(1e-4, 1e-2, 8),
        hidden_size=rng.integers(16, 256, 8),
        label=[""] * 7 + ["#1: a"],
        status=["completed"] * 4 + ["stopped"] * 4,
        val_hm=rng.uniform(0, 1, 8),
    )
    style = plots.styles(["#1: a"], short=["#1"])
    fig = plots.hyperparameter_effects(table, style, params, "val_hm", "validation HM")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == len(params) == 6 + (len(patches) > 1)
    titles = {ax.get_xlabel(): ax for ax in shown}
    if len(patches) > 1:
        patch = titles[plots.PARAM_TITLES["patch"]]
        assert patch.get_xscale() == "log"
        assert [t.get_text() for t in patch.get_xticklabels()] == ["1", "2", "4"]
    assert titles[plots.PARAM_TITLES["lr"]].get_xscale() == "log"
