"""DataFrame -> matplotlib Figure. Nothing here writes a file or touches pyplot's state.

Every function takes tidy frames (as made by `analysis.results`) and a style per
configuration, so one configuration has one colour in every figure of a report.
Figures are built with `matplotlib.figure.Figure` directly: no global pyplot figures to
leak, no display backend needed.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Collection, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

from search import metrics as m
from search.run_folder import TrialStatus
from search.space import PARAMS, log_scaled

# Colour-blind-friendly, dark enough on white (its grey and pale yellow left out, grey
# being for "other trials"); black is kept for the tutorial's `seed`.
CONFIG_COLOURS = [
    sns.color_palette("colorblind", 10).as_hex()[i] for i in (0, 1, 2, 3, 4, 5, 6, 9)
]
OTHER_COLOUR = "#b0b0b0"  # trials not shown in the curves
NEUTRAL = "#5a5a5a"  # bars that stand for no configuration
SEED_STYLE = {"color": "black", "linestyle": (0, (5, 2)), "marker": "s"}
MARKERS = ("o", "^", "D", "v", "P", "X", "<", ">", "h", "*")
# Outcomes in greys and dark reds, so they are never mistaken for a configuration.
STATUS_COLOURS = {
    TrialStatus.COMPLETED: "#404040",
    TrialStatus.STOPPED: "#a0a0a0",
    TrialStatus.DIVERGED: "#b2182b",
    TrialStatus.FAILED: "#67001f",
    TrialStatus.UNFINISHED: "#d9d9d9",
}
# Statuses drawn on a dark colour, so labelled in white.
DARK_STATUSES = {TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.DIVERGED}
PARAM_TITLES = {
    "num_layers": "depth (LSTM layers)",
    "hidden_size": "width (hidden units)",
    "dropout": "dropout",
    "forget_bias": "forget-gate bias",
    "lr": "learning rate",
    "batch_size": "batch size",
    "patch": "patch (time points per step)",
}
DISCRETE_PARAMS = {"num_layers", "batch_size", "patch"}


def _themed(plot):
    """Seaborn's look for one figure, without changing matplotlib's global settings."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with mpl.rc_context({**sns.axes_style("whitegrid"), **sns.plotting_context("notebook")}):
            return plot(*args, **kwargs)

    return wrapper


def styles(
    names: Sequence[str], seed_name: str | None = None, short: Sequence[str] | None = None
) -> dict[str, dict]:
    """A fixed style per configuration: colours in rank order, the seed in black.

    `short` gives each a few-character tag (e.g. "#1") to label line ends with.
    """
    out, i = {}, 0
    for j, name in enumerate(names):
        if name == seed_name:
            out[name] = dict(SEED_STYLE)
        else:
            out[name] = {
                "color": CONFIG_COLOURS[i % len(CONFIG_COLOURS)],
                "linestyle": "-",
                "marker": MARKERS[i % len(MARKERS)],
            }
            i += 1
        out[name]["short"] = short[j] if short is not None else ""
    return out


FAMILY_LINESTYLES = ("-", (0, (6, 2)), (0, (2, 1.5)), (0, (6, 2, 2, 2)))


def family_styles(families: dict[str, list[str]]) -> dict[str, dict]:
    """One colour per family (e.g. a run), one line style per member (its configurations,
    best first), so that several runs' curves read as groups on one page."""
    out = {}
    for i, (family, labels) in enumerate(families.items()):
        colour = CONFIG_COLOURS[i % len(CONFIG_COLOURS)]
        out[family] = {"color": colour, "linestyle": "-", "marker": MARKERS[0], "short": family}
        for j, label in enumerate(labels):
            out[label] = {
                "color": colour,
                "linestyle": FAMILY_LINESTYLES[j % len(FAMILY_LINESTYLES)],
                "marker": MARKERS[j % len(MARKERS)],
                "short": f"{family} #{j + 1}",
            }
    return out


def _legend_below(fig: Figure, ax, ncols: int = 1) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


def _percent_axis(ax, axis: str = "y") -> None:
    getattr(ax, f"{axis}axis").set_major_formatter(PercentFormatter(1.0, decimals=0))


@_themed
def timestep_accuracy(
    by_step: pd.DataFrame,
    style: dict[str, dict],
    title: str,
    thresholds: Sequence[float] = (),
    ylabel: str = "test accuracy",
    tag_meaning: str = "rank",
    steps_word: str = "steps",
    xlabel: str = "steps read",
) -> Figure:
    """One line per configuration: accuracy after reading 1, 2, ... S steps (`steps_word`:
    "rows" for images).

    `by_step` has columns label, step, accuracy; configurations may read different
    numbers of steps. Left: all steps. Right: a close-up of the last steps, where good
    configurations differ by a few points, with each line tagged at its end. A
    configuration's marker sits where it first reaches the highest threshold, to show
    which one recognises the class earliest.
    """
    n = by_step["label"].nunique()
    fig = Figure(figsize=(14, 6.3 + 0.3 * n), layout="constrained")
    full, zoom = fig.subplots(1, 2, width_ratios=[1.6, 1])
    curves = {
        label: curve.sort_values("step") for label, curve in by_step.groupby("label", sort=False)
    }
    last = int(by_step["step"].max())
    finals = [c["accuracy"].iloc[-1] for c in curves.values()]
    low = max(0.0, min(finals) - 0.08)  # the close-up shows the band of final accuracies
    best = by_step.groupby("step")["accuracy"].max()
    start = int(best[best >= low].index.min()) - 1 if (best >= low).any() else last - 5
    start = max(1, min(start, last - 3))
    top = min(1.0, max(by_step["accuracy"].max() + 0.015, low + 0.05))
    span = max(last - start, 3)  # the close-up's width in steps: tag offsets scale with it

    for ax in (full, zoom):
        for threshold in thresholds:
            ax.axhline(threshold, color="0.5", linewidth=1.2, linestyle=":")
        for label, curve in curves.items():
            s = style[label]
            reached = np.flatnonzero(curve["accuracy"].to_numpy() >= max(thresholds, default=2))
            ax.plot(
                curve["step"],
                curve["accuracy"],
                color=s["color"],
                linestyle=s["linestyle"],
                linewidth=2.4 if ax is zoom else 2.0,
                marker=s["marker"],
                markevery=[int(reached[0])] if len(reached) else [],
                ms=10,
                label=label,
            )
        _percent_axis(ax)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=14 if ax is full else 8))
    for threshold in thresholds:
        full.annotate(
            f"{threshold:.0%}",
            (1 + 0.02 * last, threshold),
            xytext=(0, 3),
            textcoords="offset points",
            color="0.35",
            va="bottom",
        )
    full.set_xlim(0.5, last + 0.5)
    full.set_ylim(0, 1.02)
    full.set_ylabel(ylabel)
    full.set_title(f"All {last} {steps_word}", loc="left")
    full.axvspan(start - 0.2, last + 0.2, color="0.93", zorder=0)

    zoom.set_xlim(start - 0.3, last + 0.45 * span + 0.5)
    zoom.set_ylim(low, top)
    zoom.set_title(f"Close-up: {steps_word} {start}-{last} (shaded on the left)", loc="left")
    ends = {
        label: (float(c["step"].iloc[-1]), c["accuracy"].iloc[-1]) for label, c in curves.items()
    }
    _end_tags(zoom, ends, style, last + 0.08 * span, (low, top))

    fig.suptitle(title, fontsize=14, x=0.01, ha="left")
    step = steps_word.removesuffix("s")
    marker_note = (
        f"; marker = first {step} at which it reaches {max(thresholds):.0%}" if thresholds else ""
    )
    handles, labels = full.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        frameon=False,
        title=f"configuration (line-end tag = {tag_meaning}{marker_note})",
    )
    return fig


def _end_tags(
    ax, ends: dict[str, tuple[float, float]], style: dict, x_tag: float, ylim: tuple[float, float]
) -> None:
    """Tag each line's end (x, y) with its short name at `x_tag`, nudged apart so tags
    never overlap."""
    ordered = sorted((y, x, label) for label, (x, y) in ends.items() if style[label]["short"])
    gap = (ylim[1] - ylim[0]) * 0.055
    placed: list[float] = []
    for y, _, _ in ordered:
        placed.append(max(y, placed[-1] + gap) if placed else y)
    overflow = placed[-1] - (ylim[1] - gap / 2) if placed else 0
    if overflow > 0:
        placed = [p - overflow for p in placed]
    for (y, x, label), y_tag in zip(ordered, placed, strict=True):
        s = style[label]
        ax.annotate(
            s["short"],
            (x, y),
            xytext=(x_tag, y_tag),
            textcoords="data",
            color=s["color"],
            fontweight="bold",
            va="center",
            fontsize=11,
            arrowprops={"arrowstyle": "-", "color": s["color"], "lw": 0.8},
        )


@_themed
def accuracy_by_share(
    by_share: pd.DataFrame,
    style: dict[str, dict],
    title: str,
    ylabel: str = "test accuracy",
    tag_meaning: str = "rank",
) -> Figure:
    """One line per configuration: accuracy after reading 5%, 10%, ... 100% of each
    series (its own time points), so that series of unequal lengths, and models that read
    different numbers of time points per step, compare. `by_share` has label, share,
    accuracy."""
    n = by_share["label"].nunique()
    fig = Figure(figsize=(12, 6 + 0.3 * n), layout="constrained")
    ax = fig.subplots()
    ends = {}
    for label, curve in by_share.groupby("label", sort=False):
        curve = curve.sort_values("share")
        s = style[label]
        ax.plot(
            curve["share"],
            curve["accuracy"],
            color=s["color"],
            linestyle=s["linestyle"],
            linewidth=2.0,
            marker=s["marker"],
            markevery=[len(curve) - 1],  # the final accuracy: the whole series read
            ms=9,
            label=label,
        )
        ends[label] = (float(curve["share"].iloc[-1]), curve["accuracy"].iloc[-1])
    _percent_axis(ax, "x")
    _percent_axis(ax)
    ax.set_xlim(0, 1.12)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(np.linspace(0, 1, 11))
    _end_tags(ax, ends, style, 1.04, (0, 1.02))
    ax.set_xlabel("share of each series read (its own time points)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=13)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        frameon=False,
        title=f"configuration (line-end tag = {tag_meaning}; marker = the whole series)",
    )
    return fig


HM_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9)  # the trade-off figure's lines of equal HM


@_themed
def tradeoff(curves: pd.DataFrame, style: dict[str, dict], title: str) -> Figure:
    """The early classifier's trade-off: accuracy against earliness of the stopping rule
    at every threshold, one line per configuration, its chosen threshold marked; grey
    lines join the points of equal harmonic mean (HM).

    `curves` has label, threshold, accuracy, earliness, chosen (the threshold chosen on
    validation)."""
    n = curves["label"].nunique()
    fig = Figure(figsize=(11, 7 + 0.3 * n), layout="constrained")
    ax = fig.subplots()
    for h in HM_LEVELS:
        # HM = 2·a·τ/(a + τ) with τ = 1 − earliness, solved for the accuracy a.
        timeliness = np.linspace(h / 2 + 1e-4, 1.0, 300)
        accuracy = h * timeliness / (2 * timeliness - h)
        keep = accuracy <= 1.0
        ax.plot(1 - timeliness[keep], accuracy[keep], color="0.78", lw=1, ls=":", zorder=0)
        ax.annotate(
            f"HM {h:.1f}",
            (1 - h / (2 - h), 1.0),  # where the line meets accuracy 100%
            xytext=(2, -2),
            textcoords="offset points",
            color="0.5",
            fontsize=9,
            va="top",
        )
    for label, curve in curves.groupby("label", sort=False):
        curve = curve.sort_values("threshold")  # a higher threshold decides later
        s = style[label]
        ax.plot(
            curve["earliness"],
            curve["accuracy"],
            color=s["color"],
            linestyle=s["linestyle"],
            lw=1.8,
            marker=".",  # one dot per threshold tried
            ms=5,
            label=label,
        )
        chosen = curve[curve["chosen"].astype(bool)]
        ax.scatter(
            chosen["earliness"],
            chosen["accuracy"],
            marker=s["marker"],
            s=150,
            color=s["color"],
            edgecolor="black",
            linewidth=1,
            zorder=4,
        )
    _percent_axis(ax, "x")
    _percent_axis(ax)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("earliness: share of each series read before the decision (less = earlier)")
    ax.set_ylabel("test accuracy of the decisions")
    ax.set_title(title, loc="left", fontsize=13)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        frameon=False,
        title="configuration (large marker: its threshold, chosen on validation)",
    )
    return fig


@_themed
def recognition_points(
    points: pd.DataFrame, style: dict[str, dict], steps: int, steps_word: str = "steps"
) -> Figure:
    """For each configuration, the steps it reads before test accuracy reaches 50% / 90%
    (of `steps` at most); a level never reached sits in a separate "never" column."""
    columns = [c for c in points.columns if c.startswith("steps_to_")]
    never = steps * 1.09 + 1.5
    fig = Figure(figsize=(13, 1.9 + 0.55 * len(points)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(points))[::-1]
    ax.axvline((steps + never) / 2, color="0.6", lw=1)
    for column, fill in zip(columns, ("none", "full"), strict=False):
        pct = column.removeprefix("steps_to_").removesuffix("pct")
        for yi, (_, row) in zip(y, points.iterrows(), strict=True):
            x = row[column] if pd.notna(row[column]) else never
            offset = 0.18 if fill == "full" and pd.isna(row[column]) else 0.0
            ax.plot(
                x,
                yi - offset,
                "o",
                ms=11,
                color=style[row["label"]]["color"],
                fillstyle=fill,
                markeredgewidth=2,
            )
        ax.plot([], [], "o", ms=10, color="0.3", fillstyle=fill, mew=2, label=f"{pct}% reached")
    for yi, (_, row) in zip(y, points.iterrows(), strict=True):
        reached = row[columns].dropna()
        if len(reached) == 2:
            ax.plot(reached.values, [yi, yi], color=style[row["label"]]["color"], lw=1.5)
    ax.set_yticks(y, points["label"], fontsize=9.5)
    for tick, (_, row) in zip(ax.get_yticklabels(), points.iterrows(), strict=True):
        tick.set_color(style[row["label"]]["color"])
    ticks = [int(t) for t in MaxNLocator(integer=True, nbins=14).tick_values(1, steps)]
    ticks = [t for t in ticks if 1 <= t <= steps]
    ax.set_xticks([*ticks, never], [*map(str, ticks), "never"])
    ax.set_xlim(0.5, never + 0.05 * steps + 0.5)
    ax.set_ylim(-0.7, len(points) - 0.3)
    ax.set_xlabel(
        f"{steps_word} read before test accuracy first reaches the level (fewer = earlier)"
    )
    ax.set_title(
        f"Recognition point: {steps_word} needed to reach 50% and 90%", loc="left", fontsize=13
    )
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    return fig


def _short_name(name, limit: int = 10) -> str:
    """A class label short enough for a bar: long ones cut, with an ellipsis."""
    text = str(name)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@_themed
def digit_reading(
    probs: pd.DataFrame, image: np.ndarray, model_name: str, colour: str = CONFIG_COLOURS[0]
) -> Figure:
    """The tutorial's picture: after each of the 28 rows (a 7x4 grid), the rows seen so
    far and the model's class probabilities, the true class in the model's `colour`.

    `probs` holds one example: step, class, class_name, probability, true_class. All 28
    panels share one Axes in pixel units (a panel is the 28x28 digit, then its bars): 56
    separate Axes would take seconds to lay out.
    """
    true_class = int(probs["true_class"].iloc[0])
    names = probs.drop_duplicates("class").set_index("class")["class_name"].map(_short_name)
    steps = int(probs["step"].max())
    table = probs.pivot(index="step", columns="class", values="probability")
    classes = table.columns.to_numpy()
    size = image.shape[0]  # 28 pixels; bar heights are scaled to it (probability 1 = 28)
    bar_step, bar_width = 3.6, 2.9
    bars_x = size + 3.5
    panel_w, panel_h = bars_x + bar_step * len(classes) + 5, size + 13
    cols = 7
    rows = int(np.ceil(steps / cols))
    width, height = cols * panel_w + 1, rows * panel_h + 1  # in pixel units
    fig = Figure(figsize=(17, 17 * height / width + 0.9), layout="constrained")
    ax = fig.subplots()
    ink = 1.0 - image.astype(float) / 255.0  # dark digit on white, as on paper
    for t in range(1, steps + 1):
        r, c = divmod(t - 1, cols)
        x0, y0 = c * panel_w, r * panel_h + 6
        seen = np.where(np.arange(size)[:, None] < t, ink, 0.92)  # unread rows: plain grey
        ax.imshow(
            seen,
            cmap="gray",
            vmin=0,
            vmax=1,
            extent=(x0, x0 + size, y0 + size, y0),
            interpolation="nearest",
        )
        ax.plot([x0, x0 + size], [y0 + t, y0 + t], color="#d55e00", lw=1.3)
        ax.text(x0, y0 - 1.2, f"row {t}", fontsize=10, va="bottom")

        p = table.loc[t].to_numpy()
        left = x0 + bars_x
        base = y0 + size
        for level in (0.5, 1.0):
            ax.plot(
                [left - 0.6, left + bar_step * len(classes)],
                [base - level * size] * 2,
                color="0.85",
                lw=0.8,
                zorder=0,
            )
        ax.plot([left - 0.6, left + bar_step * len(classes)], [base, base], color="0.3", lw=0.8)
        xs = left + bar_step * np.arange(len(classes))
        ax.bar(
            xs,
            -p * size,
            bottom=base,
            width=bar_width,
            align="edge",
            color=[colour if k == true_class else "#a8a8a8" for k in classes],
        )
        for x, k in zip(xs, classes, strict=True):
            weight = "bold" if k == true_class else "normal"
            ax.text(
                x + bar_width / 2,
                base + 1,
                names[k],
                ha="center",
                va="top",
                fontsize=7,
                fontweight=weight,
            )
        top = int(classes[np.argmax(p)])
        verdict = "right" if top == true_class else "wrong"
        ax.text(
            left + bar_step * len(classes),
            y0 - 1.2,
            f"says {names[top]} ({verdict})",
            fontsize=8.5,
            ha="right",
            va="bottom",
            color="black" if top == true_class else "#b2182b",
        )
    ax.set_xlim(-1, width - 1)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    true_name = names[true_class]
    fig.suptitle(
        f"Best model reading test digit of class {true_name} one row at a time: class "
        f"probabilities (bars; gridlines at 50% and 100%) after each row; the true "
        f"class {true_name} is coloured\n{model_name}",
        fontsize=12,
    )
    return fig


MAX_PANELS = 28  # the series picture shows at most this many steps, evenly spaced
MAX_CHANNELS = 6  # and draws at most this many channels
# Channels in dark colours, none the orange that marks the last time point read.
CHANNEL_COLOURS = ("#222222", "#0072b2", "#009e73", "#cc79a7", "#56b4e9", "#8c564b")
UNREAD = "#d4d4d4"


def shown_steps(steps: int, most: int = MAX_PANELS) -> list[int]:
    """Every step of a series of `steps` steps, or `most` of them evenly spaced, the last
    always among them."""
    if steps <= most:
        return list(range(1, steps + 1))
    return sorted({int(round(s)) for s in np.linspace(1, steps, most)})


@_themed
def series_reading(
    probs: pd.DataFrame,
    values: np.ndarray,
    patch: int,
    model_name: str,
    colour: str = CONFIG_COLOURS[0],
    step_word: str = "step",
) -> Figure:
    """The series version of the tutorial's picture: for some of its steps (all, up to
    MAX_PANELS), the series up to that step (each channel a line, the unread part light
    grey) beside the model's class probabilities after it, the true class in `colour`.

    `probs` holds one example: step, class, class_name, probability, true_class;
    `values` (L, F) is the series over its own L time points, read `patch` per step.
    Like `digit_reading`, every panel is drawn on one Axes in panel units.
    """
    true_class = int(probs["true_class"].iloc[0])
    names = probs.drop_duplicates("class").set_index("class")["class_name"]
    table = probs.pivot(index="step", columns="class", values="probability")
    classes = table.columns.to_numpy()
    steps = shown_steps(int(table.index.max()))
    length, features = values.shape
    drawn = values[:, :MAX_CHANNELS]  # (L, F')
    low, high = drawn.min(0), drawn.max(0)  # each channel scaled to its own range
    scaled = (drawn - low) / np.where(high > low, high - low, 1.0)  # (L, F') in [0, 1]

    plot_w, plot_h = 30.0, 18.0
    bars_w = 26.0
    bar_step = bars_w / len(classes)
    labelled = len(classes) <= 20  # more bars than that: no room for a name under each
    rotate = labelled and any(len(str(n)) > 2 for n in names)
    label_h = 9.0 if rotate else 3.5
    panel_w, panel_h = plot_w + 3 + bars_w + 4, plot_h + label_h + 6
    cols = min(5, len(steps))
    rows = int(np.ceil(len(steps) / cols))
    width, height = cols * panel_w, rows * panel_h
    fig = Figure(figsize=(17, 17 * height / width + 1.2), layout="constrained")
    ax = fig.subplots()
    xs_series = plot_w * np.arange(length) / max(length - 1, 1)
    for i, t in enumerate(steps):
        r, c = divmod(i, cols)
        x0, y0 = c * panel_w, r * panel_h + 4
        read = min(t * patch, length)  # time points read after step t
        ax.add_patch(
            mpl.patches.Rectangle((x0, y0), plot_w, plot_h, fill=False, ec="0.85", lw=0.8)
        )
        for f in range(scaled.shape[1]):
            ys = y0 + 1 + (plot_h - 2) * (1 - scaled[:, f])  # panel units grow downward
            ax.plot(x0 + xs_series[read - 1 :], ys[read - 1 :], color=UNREAD, lw=1.0)
            ax.plot(x0 + xs_series[:read], ys[:read], color=CHANNEL_COLOURS[f], lw=1.2)
        edge = x0 + xs_series[read - 1]
        ax.plot([edge, edge], [y0, y0 + plot_h], color="#d55e00", lw=1.1)
        ax.text(x0, y0 - 0.8, f"{step_word} {t}", fontsize=9.5, va="bottom")

        p = table.loc[t].to_numpy()
        left = x0 + plot_w + 3
        base = y0 + plot_h
        for level in (0.5, 1.0):
            ax.plot([left - 0.5, left + bars_w], [base - level * plot_h] * 2, color="0.85", lw=0.8)
        ax.plot([left - 0.5, left + bars_w], [base, base], color="0.3", lw=0.8)
        xs = left + bar_step * np.arange(len(classes))
        ax.bar(
            xs,
            -p * plot_h,
            bottom=base,
            width=bar_step * 0.8,
            align="edge",
            color=[colour if k == true_class else "#a8a8a8" for k in classes],
        )
        if labelled:
            for x, k in zip(xs, classes, strict=True):
                ax.text(
                    x + bar_step * 0.4,
                    base + 0.8,
                    _short_name(names[k]),
                    ha="center",
                    va="top",
                    rotation=90 if rotate else 0,
                    fontsize=6.5,
                    fontweight="bold" if k == true_class else "normal",
                )
        top = int(classes[np.argmax(p)])
        ax.text(
            left + bars_w,
            y0 - 0.8,
            f"says {_short_name(names[top], 14)}",
            fontsize=8,
            ha="right",
            va="bottom",
            color="black" if top == true_class else "#b2182b",
        )
    ax.set_xlim(-1, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    shown = "every" if len(steps) == table.index.max() else f"{len(steps)} evenly spaced"
    channels = (
        f"{features} channel{'s' * (features != 1)}"
        if features <= MAX_CHANNELS
        else f"the first {MAX_CHANNELS} of {features} channels"
    )
    handles = [
        Line2D([], [], color=CHANNEL_COLOURS[f], lw=2, label=f"channel {f + 1}")
        for f in range(scaled.shape[1])
    ]
    handles.append(Line2D([], [], color=UNREAD, lw=2, label="not read yet"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    about = (
        f"Best model reading a test series of class {names[true_class]} ({length} time "
        f"points, {patch} per {step_word}), at {shown} {step_word}: the series read so far "
        f"({channels}, each scaled to its own range) beside the class probabilities after "
        f"that {step_word} (gridlines at 50% and 100%); the true class is coloured"
    )
    fig.suptitle(
        textwrap.fill(about, 150) + f"\n{model_name}",
        fontsize=12,
    )
    return fig


@_themed
def hyperparameter_effects(
    table: pd.DataFrame,
    style: dict[str, dict],
    params: Sequence[str] = PARAMS,
    metric: str = m.VAL_ACC,
    ylabel: str = "validation accuracy (best epoch)",
    log_params: Collection[str] | None = None,
) -> Figure:
    """Validation `metric` against each searched hyperparameter (`params`), one point per
    trial; `log_params` (default: the default space's) on a log axis.

    Shown configurations keep their colours; the rest are grey. Marker shape is the
    trial's outcome: ASHA-stopped trials were judged at fewer epochs.
    """
    log_params = log_scaled() if log_params is None else log_params
    cols = 3 if len(params) <= 6 else 4
    rows = int(np.ceil(len(params) / cols))
    fig = Figure(figsize=(4.7 * cols, 4.25 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    rng = np.random.default_rng(0)
    markers = {TrialStatus.COMPLETED: "o", TrialStatus.STOPPED: "X"}
    for ax, param in zip(axes, params, strict=False):
        x = table[param].astype(float).to_numpy()
        if param == "num_layers":  # spread points that share a value
            x = x + rng.uniform(-0.16, 0.16, len(x))
        elif param in DISCRETE_PARAMS:  # powers of two and the like: spread by a factor
            x = x * (1 + rng.uniform(-0.04, 0.04, len(x)))
        data = table.assign(_x=x)
        others = data[data["label"] == ""]
        sns.scatterplot(
            data=others,
            x="_x",
            y=metric,
            style="status",
            markers=markers,
            color=OTHER_COLOUR,
            s=55,
            ax=ax,
            legend=False,
        )
        for _, row in data[data["label"] != ""].iterrows():
            ax.scatter(
                row["_x"],
                row[metric],
                marker=markers.get(row["status"], "o"),
                s=110,
                color=style[row["label"]]["color"],
                edgecolor="black",
                linewidth=0.8,
                zorder=3,
            )
        if param in log_params:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(
                LogLocator(
                    base=2 if param == "hidden_size" else 10,
                    subs=(1.0,) if param == "hidden_size" else (1.0, 3.0),
                )
            )
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif param not in DISCRETE_PARAMS:  # few ticks: the panels are narrow
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        if param == "num_layers":
            ax.set_xticks([1, 2, 3])
        if param in ("batch_size", "patch"):  # discrete, on a log axis: patch base 2
            ax.set_xscale("log", base=2 if param == "patch" else 10)
            values = sorted(table[param].unique())
            ax.set_xticks(values, [str(int(v)) for v in values])
            ax.minorticks_off()
        ax.set_xlabel(PARAM_TITLES[param])
        ax.set_ylabel(ylabel)
        _percent_axis(ax)
    handles = [
        Line2D([], [], marker=markers[status], ls="", color="0.35", ms=9, label=text)
        for status, text in (
            (TrialStatus.COMPLETED, "completed all epochs"),
            (TrialStatus.STOPPED, "stopped early by ASHA"),
        )
    ]
    handles.append(
        Line2D([], [], marker="o", ls="", color=OTHER_COLOUR, ms=9, label="other trials")
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle(
        "What each hyperparameter does: one point per trial; coloured points are the "
        "configurations of the accuracy-versus-step figure (same colours)",
        fontsize=12,
    )
    return fig


AXIS_TITLES = {
    m.VAL_ACC: "validation accuracy after the whole series (best epoch)",
    m.VAL_AREA: "validation area: mean share of each series' steps read right",
    m.VAL_HM: "validation HM of early accuracy and earliness",
    m.PARAM_COUNT: "parameters (log scale)",
}
SHARE_METRICS = (m.VAL_ACC, m.VAL_AREA, m.VAL_HM)  # figures in [0, 1], drawn as percentages


@_themed
def pareto_front(
    trials: pd.DataFrame, objectives: list[tuple[str, str]], style: dict[str, dict]
) -> Figure:
    """Every ranked trial on the two objectives; the front's points joined by a step line.

    `trials` has both metrics, `on_front` and `label` (the style's key for the
    configurations shown elsewhere in the report, blank for the rest).
    """
    (x, _), (y, _) = objectives
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax = fig.subplots()
    rest = trials[~trials["on_front"]]
    ax.scatter(rest[x], rest[y], s=30, color=OTHER_COLOUR, label="other trials", zorder=2)
    front = trials[trials["on_front"]].sort_values(x)
    # The edge of what the front dominates: between two front points, only the one
    # further along x still counts, so the line steps at the nearer one.
    ax.step(front[x], front[y], where="pre", color=NEUTRAL, linewidth=1.2, zorder=3)
    for _, row in front.iterrows():
        s = style.get(row["label"], {"color": NEUTRAL, "marker": "o"})
        ax.scatter(
            row[x],
            row[y],
            s=110,
            color=s["color"],
            marker=s["marker"],
            zorder=4,
            label=row["label"] or None,
            edgecolor="white",
        )
    for metric, axis in ((x, "x"), (y, "y")):
        if metric == m.PARAM_COUNT:
            getattr(ax, f"set_{axis}scale")("log")
        elif metric in SHARE_METRICS:
            _percent_axis(ax, axis)
    ax.set_xlabel(AXIS_TITLES.get(x, x))
    ax.set_ylabel(AXIS_TITLES.get(y, y))
    ax.set_title(
        "Pareto front: no other trial is better on both (coloured: on the front)",
        loc="left",
        fontsize=13,
    )
    _legend_below(fig, ax, ncols=1)
    return fig


@_themed
def importances(table: pd.DataFrame, figure: str = "validation accuracy") -> Figure:
    """Optuna's (fANOVA) importance of each hyperparameter for `figure`."""
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.subplots()
    data = table.assign(name=table["param"].map(PARAM_TITLES).fillna(table["param"]))
    sns.barplot(data=data, x="importance", y="name", color=NEUTRAL, ax=ax)
    for patch, value in zip(ax.patches, data["importance"], strict=False):
        ax.annotate(
            f"{value:.2f}",
            (patch.get_width(), patch.get_y() + patch.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
        )
    ax.set_xlim(0, max(1.0, data["importance"].max() * 1.15))
    ax.set_xlabel(f"share of the variance in {figure} (fANOVA, sums to 1)")
    ax.set_ylabel("")
    ax.set_title("Hyperparameter importance (Optuna)", loc="left", fontsize=13)
    return fig


def _wall_axis(seconds: pd.Series) -> tuple[pd.Series, str]:
    if len(seconds) and seconds.max() > 300:
        return seconds / 60, "wall time since the run started (minutes)"
    return seconds, "wall time since the run started (seconds)"


@_themed
def best_so_far(
    by_trial: pd.DataFrame,
    by_time: pd.DataFrame,
    metric: str = m.VAL_ACC,
    ylabel: str = "validation accuracy",
) -> Figure:
    """Best validation `metric` found so far, against trial number and wall time."""
    fig = Figure(figsize=(14, 5.5), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    _trials_and_best(left, by_trial, "trial_number", metric, "status", STATUS_COLOURS)
    left.set_xlabel("trial number (order started)")
    left.set_ylabel(ylabel)
    left.legend(loc="lower right")
    left.set_title("Best so far, by trial", loc="left")

    x, xlabel = _wall_axis(by_time["wall_seconds"])
    right.scatter(x, by_time[metric], s=12, color=OTHER_COLOUR, label="one epoch of a trial")
    right.step(x, by_time["best_so_far"], where="post", color="black", lw=2, label="best so far")
    right.set_xlabel(xlabel)
    right.legend(loc="lower right")
    right.set_title("Best so far, by wall time", loc="left")
    for ax in (left, right):
        _percent_axis(ax)
    return fig


def _trials_and_best(
    ax, table: pd.DataFrame, x: str, y: str, by: str, colours: dict, sort: bool = True
) -> None:
    """One dot per trial, coloured by its `by` column, and the black step line of
    `table`'s `best_so_far`, against trial numbers `x`."""
    for key, part in table.groupby(by, sort=sort):
        ax.scatter(
            part[x],
            part[y],
            s=30,
            color=colours.get(key, OTHER_COLOUR),
            alpha=0.8,
            label=f"one trial ({key})",
        )
    ax.step(table[x], table["best_so_far"], where="post", color="black", lw=2, label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# Where a study's trials came from (analysis.results.STUDY_SOURCES), in greys but this run's.
SOURCE_COLOURS = {"this run": "#2166ac", "warm start": "#a0a0a0", "another search": "#404040"}


@_themed
def study_history(history: pd.DataFrame, objective: str) -> Figure:
    """The Optuna study's trials in its own order, by source, and the best so far."""
    fig = Figure(figsize=(11, 5), layout="constrained")
    ax = fig.subplots()
    _trials_and_best(ax, history, "study_trial", "value", "source", SOURCE_COLOURS, sort=False)
    ax.set_xlabel("trial number in the study")
    ax.set_ylabel(objective)
    _percent_axis(ax)
    ax.legend(loc="best")
    ax.set_title("The study's history", loc="left")
    return fig


@_themed
def learning_curves(curves: pd.DataFrame, style: dict[str, dict]) -> Figure:
    """Validation accuracy and training loss per epoch of the shown configurations."""
    fig = Figure(figsize=(14, 6 + 0.28 * curves["label"].nunique()), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    for label, curve in curves.groupby("label", sort=False):
        s = style[label]
        kw = {"color": s["color"], "linestyle": s["linestyle"], "marker": s["marker"], "lw": 2}
        acc_ax.plot(curve[m.EPOCH], curve[m.VAL_ACC], label=label, **kw)
        loss_ax.plot(curve[m.EPOCH], curve[m.TRAIN_LOSS], **kw)
    acc_ax.set_ylabel("validation accuracy")
    _percent_axis(acc_ax)
    loss_ax.set_ylabel("training loss (cross-entropy, as --loss weighs the steps)")
    loss_ax.set_yscale("log")
    loss_ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    loss_ax.yaxis.set_minor_formatter(NullFormatter())
    for ax in (acc_ax, loss_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.set_title("Learning curves: validation accuracy", loc="left")
    loss_ax.set_title("Learning curves: training loss", loc="left")
    _legend_below(fig, acc_ax)
    return fig


@_themed
def epochs_reached(counts: pd.DataFrame) -> Figure:
    """How many trials ended after each epoch, stacked by outcome (ASHA's rungs)."""
    table = counts.pivot(index="epochs", columns="status", values="trials").fillna(0)
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(table))
    bottom = np.zeros(len(table))
    for status in [s for s in STATUS_COLOURS if s in table.columns]:
        values = table[status].to_numpy()
        bars = ax.bar(positions, values, bottom=bottom, color=STATUS_COLOURS[status], label=status)
        ax.bar_label(
            bars,
            [f"{int(v)}" if v else "" for v in values],
            label_type="center",
            color="white" if status in DARK_STATUSES else "black",
            fontweight="bold",
        )
        bottom += values
    ax.set_xticks(positions, [str(int(e)) for e in table.index])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epochs trained when the trial ended")
    ax.set_ylabel("trials")
    ax.set_title("Where trials ended: ASHA stops the weaker ones at its rungs", loc="left")
    ax.legend(title="outcome")
    return fig


@_themed
def best_so_far_runs(by_time: pd.DataFrame, style: dict[str, dict]) -> Figure:
    """Best validation accuracy so far against wall time, one line per run."""
    fig = Figure(figsize=(11, 5.5 + 0.28 * by_time["run"].nunique()), layout="constrained")
    ax = fig.subplots()
    x, xlabel = _wall_axis(by_time["wall_seconds"])
    data = by_time.assign(_x=x)
    for run, part in data.groupby("run", sort=False):
        s = style[run]
        ax.step(part["_x"], part["best_so_far"], where="post", color=s["color"], lw=2, label=run)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("best validation accuracy so far")
    _percent_axis(ax)
    ax.set_title("Best so far, by wall time (each run on its own validation set)", loc="left")
    _legend_below(fig, ax)
    return fig
