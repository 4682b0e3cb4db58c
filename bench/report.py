"""`python -m bench.report`: docs/benchmarks.json -> docs/benchmarks.md (never hand-edited).

Each benchmark section is rendered from its own entry, with the command, date and sizes it
was measured with, so a rerun of one benchmark regenerates its section and keeps the rest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.suite import BENCHMARKS, TITLES
from bench.suite import summary as summary_of
from bench.systems import LABELS, SYSTEMS

REPO = Path(__file__).resolve().parent.parent
RESULTS_JSON = REPO / "docs" / "benchmarks.json"
REPORT_MD = REPO / "docs" / "benchmarks.md"
# The reading of the figures (what stands in the way of a goal, what to change) is prose
# a person writes after a run; it is kept in its own file and included as is, below the
# figures, so the figures themselves are only ever generated.
CLOSING_NOTE = REPO / "bench" / "closing_note.md"
FULL_COMMAND = "python -m bench --scale full --full-mnist"


def _f(value, spec: str = ".1f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def _stat(s: dict, spec: str = ".1f", scale: float = 1.0, none: str = "n/a") -> str:
    """`median [min-max]` of a summary dict."""
    if s["median"] is None:
        reached = [v for v in s["values"] if v is not None]
        return f"{none} ({len(reached)}/{len(s['values'])} reached)"
    lo, hi = s["range"]
    med, lo, hi = (format(v * scale, spec) for v in (s["median"], lo, hi))
    return f"{med} [{lo}–{hi}]"


def table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


MARKS = {True: "met", False: "**not met**", None: "n/a"}  # a goal's "met" value, shown


def goals_table(goals: list[dict]) -> str:
    if not goals:
        return ""
    return table(
        ["goal", "measured", ""], [[g["goal"], g["measured"], MARKS[g["met"]]] for g in goals]
    )


# -- one renderer per benchmark ---------------------------------------------------------


def render_efficiency(r: dict) -> str:
    s = r["sizes"]
    rows = []
    for system in SYSTEMS:
        b = r["by_system"][system]
        rows.append(
            [
                LABELS[system],
                _stat(b["wall_s"], ".0f"),
                _stat(b["time_to_target_s"], ".0f", none="not reached"),
                _stat(b["best_val_acc"], ".4f"),
                _stat(b["best_val_acc_at_ours_wall"], ".4f"),
                _stat(b["test_acc"], ".4f"),
                _stat(b["epochs"], ".0f"),
            ]
        )
    main = table(
        [
            "system",
            "wall s",
            f"s to val_acc ≥ {s['target_acc']}",
            "best val_acc",
            "best val_acc when ours ends",
            "test acc (selected)",
            "epochs",
        ],
        rows,
    )
    ratio_rows = []
    for system in ("optuna", "stock"):
        q = r["ratios"][system]
        ratio_rows.append(
            [
                LABELS[system],
                _stat(q["wall_speedup"], ".2f") + "x",
                _stat(q["time_to_target_speedup"], ".2f", none="n/a") + "x",
                _stat(q["best_val_acc_gain_pp"], "+.2f"),
                _stat(q["best_val_acc_gain_at_ours_wall_pp"], "+.2f"),
                _stat(q["test_acc_gain_pp"], "+.2f"),
            ]
        )
    ratios = table(
        [
            "ours versus",
            "wall speed-up",
            "time-to-target speed-up",
            "best val_acc gain (pts)",
            "gain when ours ends (pts)",
            "test acc gain (pts)",
        ],
        ratio_rows,
    )
    seeds = table(
        ["seed", "system", "wall s", "s to target", "best val_acc", "test acc", "best config"],
        [
            [
                p["seed"],
                LABELS[p["system"]],
                _f(p["wall_s"], ".0f"),
                _f(p["time_to_target_s"], ".0f", "—"),
                _f(p["best_val_acc"], ".4f"),
                _f(p["test_acc"], ".4f"),
                _config(p["best_config"]),
            ]
            for p in r["per_seed"]
        ],
    )
    return "\n\n".join(
        [
            f"{len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}), {s['trials']} trials, "
            f"{s['max_epochs']}-epoch cap, {s['dataset']}, {s['cpus']} CPUs. Medians "
            "[min–max] over seeds; wall time runs from before the data is loaded to after "
            "Ray has shut down. Ratios are per seed, then the median.",
            main,
            ratios,
            "<details><summary>per seed</summary>\n\n" + seeds + "\n\n</details>",
        ]
    )


def _config(c: dict) -> str:
    return (
        f"{int(c['num_layers'])}x{int(c['hidden_size'])}, drop {c['dropout']:.2f}, "
        f"fb {c['forget_bias']:.2f}, lr {c['lr']:.1e}, batch {int(c['batch_size'])}"
    )


def render_overhead(r: dict) -> str:
    s = r["sizes"]
    n = s["trials"]
    in_trial = [
        [
            f"Tune trial {i + 1}: its clock over its own train + evaluate"
            + (" (fresh worker)" if i == 0 else " (reused worker)"),
            "",
            f"{1 + v:.3f}",
        ]
        for i, v in enumerate(r["in_trial_overhead"])
    ]
    searches = [
        [
            x["seed"],
            _f(x["trial_s"], ".0f"),
            _f(x["busy_s"], ".0f"),
            f"{x['trial_s'] / x['busy_s']:.3f}",
        ]
        for x in r["searches"]
    ]
    return "\n\n".join(
        [
            f"The tutorial's configuration, {s['max_epochs']} epochs: {n} times bare (the "
            f"trainable's loop without Ray, one torch thread), then {n} times as a Ray Tune "
            "trial through `search.tuner`'s trainable (one CPU, one at a time, same loggers "
            f"and checkpoint policy), then {n} times bare again. Warm: all but the first run "
            "of each kind (the first bare run pays for the process's first torch calls, the "
            "first Tune trial for starting its worker process).",
            table(
                ["measure", "seconds per trial", "versus bare (warm)"],
                [
                    ["bare loop, all runs", _stat(r["bare_s"], ".2f"), ""],
                    ["bare loop, warm (median)", _f(r["bare_warm_s"], ".2f"), "1.000"],
                    [
                        "Tune trial, its own clock (`time_total_s`), all",
                        _stat(r["tune_trial_s"], ".2f"),
                        "",
                    ],
                    [
                        "Tune trial, reused worker (median)",
                        _f(r["tune_warm_s"], ".2f"),
                        f"{1 + r['overhead_warm']:.3f}",
                    ],
                    [
                        "  of which train + evaluate (`epoch_seconds`)",
                        _stat(r["tune_epoch_s"], ".2f"),
                        "",
                    ],
                    *in_trial,
                    [
                        "`Tuner.fit` wall / trials (Tune's start and stop included)",
                        _f(r["tune_fit_per_trial_s"], ".2f"),
                        f"{1 + r['overhead_incl_tuner']:.3f}",
                    ],
                ],
            ),
            f"In whole searches ({s['search_trials']} trials, our searches of benchmark 1): "
            "the sum of the trials' clocks over the sum of their train + evaluate time, so "
            "fresh workers, reporting and checkpoints are all counted.",
            table(["seed", "trial clocks s", "train + evaluate s", "ratio"], searches),
        ]
    )


def render_utilisation(r: dict) -> str:
    rows = [
        [
            row["seed"],
            LABELS[row["system"]],
            _f(row["busy_core_s"], ".0f"),
            _f(row["wall_s"], ".0f"),
            row["cpus"],
            f"{100 * row['share']:.0f}%",
            f"{100 * row['share_fit']:.0f}%" if "share_fit" in row else "",
            _pct(row.get("in_trial_not_training")),
            _pct(row.get("outside_trials")),
        ]
        for row in r["rows"]
    ]
    return "\n\n".join(
        [
            "Core-seconds inside `train_epoch` + `evaluate` (the trials' own `epoch_seconds`, "
            "from each trial's `result.json`) over wall time x CPUs, for the searches of "
            "benchmark 1. Plain Optuna is left out: its one process runs torch on every "
            "core, so the ratio would only measure torch's threading.",
            table(
                [
                    "seed",
                    "system",
                    "busy core-s",
                    "wall s",
                    "CPUs",
                    "share of whole search",
                    "share of `Tuner.fit`",
                    "in trials, not training",
                    "outside any trial",
                ],
                rows,
            ),
            f"Median: ours {_stat(r['ours'], '.0f', 100)}% of the whole search, "
            f"{_stat(r['ours_fit'], '.0f', 100)}% of `Tuner.fit`; stock Ray Tune "
            f"{_stat(r['stock'], '.0f', 100)}%.",
        ]
    )


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def render_early_stopping(r: dict) -> str:
    rows = [
        [
            row["seed"],
            f"{row['reduction_factor']:g}" + ("" if row["default"] else " (alternative)"),
            row["epochs_asha"],
            row["epochs_full"],
            f"{row['epoch_ratio']:.2f}",
            ", ".join(
                f"{x['passed']}/{x['reached']} past epoch {x['epoch']}" for x in row["rungs"]
            ),
            f"{row['best_val_acc_asha']:.4f}",
            f"{row['best_val_acc_full']:.4f}",
            f"{row['gap_pp']:+.2f}",
            f"{row['test_acc_asha']:.4f}",
            f"{row['test_acc_full']:.4f}",
            _f(row["wall_asha_s"], ".0f"),
            _f(row["wall_full_s"], ".0f"),
        ]
        for row in r["rows"]
    ]
    return "\n\n".join(
        [
            "Our search as is (ASHA, grace 1 epoch), with other ASHA reduction factors, and "
            "with `--grace-epochs` equal to `--max-epochs` (ASHA then never stops a trial); "
            "same trials and seeds. Rungs: of the trials that reached a rung's epoch, how "
            "many trained on (a synchronous successive halving would pass 1 in rf).",
            table(
                [
                    "seed",
                    "rf",
                    "epochs (ASHA)",
                    "epochs (all to cap)",
                    "ratio",
                    "rungs",
                    "best val_acc (ASHA)",
                    "best val_acc (all)",
                    "gap (pts)",
                    "test acc (ASHA)",
                    "test acc (all)",
                    "wall s (ASHA)",
                    "wall s (all)",
                ],
                rows,
            ),
            f"Default reduction factor: median epoch ratio {_stat(r['epoch_ratio'], '.2f')}, "
            f"best validation accuracy gap {_stat(r['gap_pp'], '+.2f')} points, test accuracy "
            f"gap of the selected checkpoints {_stat(r['test_gap_pp'], '+.2f')} points "
            "(positive: running every trial to the cap did better).",
            *_render_replay(r.get("replay", [])),
        ]
    )


def _render_replay(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    settings = sorted({(x["grace"], x["reduction_factor"]) for x in rows})
    lines = []
    for grace, rf in settings:
        mine = [x for x in rows if (x["grace"], x["reduction_factor"]) == (grace, rf)]
        lines.append(
            [
                grace,
                f"{rf:g}",
                _stat(summary_of([x["epoch_ratio"] for x in mine]), ".2f"),
                _stat(summary_of([x["wall_ratio"] for x in mine]), ".2f"),
                _stat(summary_of([x["gap_pp"] for x in mine]), "+.2f"),
            ]
        )
    return [
        "Replayed (`bench/replay.py`): the all-to-cap searches' curves, in their trials' "
        "start order, through Ray's ASHA rung rule with other settings, on as many slots "
        "as CPUs. It does not model how TPE's proposals would change; medians [min–max] "
        "over seeds.",
        table(
            ["grace", "rf", "epoch ratio", "simulated wall ratio", "best val_acc gap (pts)"],
            lines,
        ),
    ]


def render_loop(r: dict) -> str:
    s = r["sizes"]
    rows = []
    for label, figures in r["raw"]["configs"].items():
        train, evals = figures["train_samples_per_s"], figures["eval_samples_per_s"]
        speed = r["speedups"][label]
        rows.append(
            [
                label,
                f"{train['ours']:.0f}",
                f"{train['usual']:.0f}",
                f"{speed['train']:.2f}x",
                f"{train['model']:.0f}",
                f"{speed['train_ceiling']:.2f}x",
                f"{evals['ours']:.0f}",
                f"{evals['usual']:.0f}",
                f"{speed['eval']:.2f}x",
            ]
        )
    return "\n\n".join(
        [
            f"Samples per second, one torch thread, median of {s['epochs']} epochs over "
            f"{s['train']} training and {s['val']} validation digits. Usual: a dataset that "
            "makes a PIL image per digit and applies `transforms.ToTensor()`, batched by a "
            "`DataLoader` (no workers; evaluation batch 1000); ours: `models.train` on tensors "
            "converted once (the conversion is counted). Model only: the same training steps "
            "over batches made before the clock starts, the ceiling for any loop; its speed-up "
            "over the usual loop is the most any loop could reach.",
            table(
                [
                    "configuration",
                    "train ours",
                    "train usual",
                    "speed-up",
                    "train model only",
                    "ceiling",
                    "eval ours",
                    "eval usual",
                    "speed-up",
                ],
                rows,
            ),
        ]
    )


def render_growth(r: dict) -> str:
    s = r["sizes"]
    parts = [
        f"Our search, seed {s['seed']}, {s['max_epochs']}-epoch cap. Wall: whole search "
        "(data, Ray start, search, shutdown); fit: `Tuner.fit` alone. Exponent b of "
        "wall = a * x^b, fitted on the logs."
    ]
    for axis, key, what in (
        ("trials", "trials_rows", "trials on the default data"),
        ("digits", "digits_rows", f"training-file digits ({s['trials_on_digits_axis']} trials)"),
    ):
        rows = [
            [
                row["x"],
                _f(row["wall_s"], ".0f"),
                _f(row["fit_wall_s"], ".0f"),
                row["epochs"],
                f"{row['best_val_acc']:.4f}",
            ]
            for row in r[key]
        ]
        exp = r["exponents"][axis]
        parts.append(
            f"**{what}** (source: {s['source']}): exponent {exp['wall']:.2f} (whole search), "
            f"{exp['fit_wall']:.2f} (`Tuner.fit`)"
        )
        parts.append(table([axis, "wall s", "fit s", "epochs", "best val_acc"], rows))
    return "\n\n".join(parts)


RENDERERS = {
    "efficiency": render_efficiency,
    "overhead": render_overhead,
    "utilisation": render_utilisation,
    "early_stopping": render_early_stopping,
    "loop": render_loop,
    "growth": render_growth,
}


SCALES = ("full", "quick")  # the order sections appear in; see bench/__main__.py
SCALE_TITLES = {"full": "the issue's size (`--scale full`)", "quick": "quick size"}


def load_results(path: Path = RESULTS_JSON) -> dict:
    """{benchmark: {scale: entry}}, as `python -m bench` writes it; {} before a first run."""
    return json.loads(path.read_text()) if path.exists() else {}


def render_section(name: str, entry: dict, scale: str = "quick") -> str:
    m = entry["machine"]
    head = [
        f"## {TITLES[name]}: {SCALE_TITLES[scale]}",
        f"`{entry['command']}` — {entry['date']}, {entry['seconds']:.0f} s; "
        f"{m['cpu']} ({m['cpus']} CPUs, {m['memory_gib']} GiB), load average "
        f"{m['load_before']} before / {m['load_after']} after.",
    ]
    body = RENDERERS[name](entry["result"])
    goals = goals_table(entry["result"].get("goals", []))
    return "\n\n".join([*head, body, *([goals] if goals else [])])


def render(results: dict) -> str:
    present = [
        (name, scale, results[name][scale])
        for name in BENCHMARKS
        for scale in SCALES
        if scale in results.get(name, {})
    ]
    sections = [render_section(name, entry, scale) for name, scale, entry in present]
    versions = present[0][2]["machine"]["packages"] if present else {}
    intro = [
        "# Benchmarks",
        "Generated by `python -m bench.report` from `docs/benchmarks.json`, which "
        "`python -m bench` writes; do not edit by hand. Each section names the command, "
        "date, machine and sizes it was measured with. Baselines train with the same "
        "`models/` code, search space (`search.space.sample`), epoch cap, split and seeds "
        "as our search, and every search runs in a fresh process with a fresh Ray.",
        f"Full scale (hours on 2 cores): `{FULL_COMMAND}`.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
    ]
    goal_rows = [
        [SCALE_TITLES[scale], g["goal"], g["measured"], MARKS[g["met"]]]
        for name, scale, entry in present
        for g in entry["result"].get("goals", [])
    ]
    summary = (
        ["## Goals at a glance", table(["size", "goal", "measured", ""], goal_rows)]
        if goal_rows
        else []
    )
    note = [CLOSING_NOTE.read_text().strip()] if CLOSING_NOTE.exists() else []
    return "\n\n".join(intro + summary + sections + note) + "\n"


def text_summary(name: str, result: dict) -> str:
    """What `python -m bench` prints after each benchmark: its tables and its goals."""
    return (
        f"\n== {TITLES[name]} ==\n"
        + RENDERERS[name](result)
        + "\n\n"
        + goals_table(result.get("goals", []))
    )


def main() -> int:
    REPORT_MD.write_text(render(load_results()))
    print(f"wrote {REPORT_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
