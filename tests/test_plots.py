"""Plot functions on hand-made frames: fast checks of what every report relies on."""

from __future__ import annotations

import pandas as pd

from analysis import plots
from analysis import results as res
from models.lstm import ROWS


def test_styles_give_each_configuration_one_colour_and_the_seed_black():
    names = ["#1: a", "#2: b", "#7 seed: c", "#3: d"]
    style = plots.styles(names, seed_name="#7 seed: c", short=["#1", "#2", "#7 seed", "#3"])
    assert style["#7 seed: c"]["color"] == "black"
    colours = [style[n]["color"] for n in names]
    assert len(set(colours)) == len(names)
    assert plots.styles(names, seed_name="#7 seed: c")["#3: d"]["color"] == style["#3: d"]["color"]


def test_figures_use_the_configuration_colours():
    by_step = pd.DataFrame(
        [
            {"label": label, "trial_id": label, "timestep": t, "accuracy": min(1, t / end)}
            for label, end in (("#1: fast", 9.5), ("#2: slow", 29.5))
            for t in range(1, ROWS + 1)
        ]
    )
    style = plots.styles(["#1: fast", "#2: slow"], short=["#1", "#2"])
    fig = plots.timestep_accuracy(by_step, style, "t", thresholds=(0.5, 0.9))
    for ax in fig.axes:
        drawn = {line.get_label(): line.get_color() for line in ax.get_lines()}
        assert drawn["#1: fast"] == style["#1: fast"]["color"]
        assert drawn["#2: slow"] == style["#2: slow"]["color"]
    points = res.recognition_points(by_step)
    assert points.set_index("label")["rows_to_90pct"].to_dict() == {"#1: fast": 9, "#2: slow": 27}
    assert points.set_index("label")["rows_to_50pct"].to_dict() == {"#1: fast": 5, "#2: slow": 15}


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
            "rows_to_50pct": [3, float("nan")],
            "rows_to_90pct": [9, float("nan")],
        }
    )
    fig = plots.recognition_points(points, style)
    ticks = {t.get_text(): t.get_color() for t in fig.axes[0].get_yticklabels()}
    assert ticks == {names[0]: style[names[0]]["color"], names[1]: "black"}
