"""The retired experiments: benchmarks that chose a default or answered a question once.

Their code left `bench/` after COMMIT; `docs/benchmarks.json` keeps each one's entry, and
its section of docs/benchmarks.md is written here from that entry: what was decided, the
figures behind it, and the command that reruns it at COMMIT.
"""

from __future__ import annotations

from bench.common import describe, stat
from bench.systems import LABELS

COMMIT = "5c6f171"  # the last commit with their code
ON_EPOCHS = "ASHA on epochs, the default until benchmark 12"
FULL_MNIST = (
    "search.run --dataset mnist --data-dir ../shared/datasets/mnist --time-budget 2h`, "
    "then `python -m bench.full_mnist RUN_DIR"
)
RETIRED: list[tuple] = []  # (number, entry in docs/benchmarks.json, title, write, command)


def retired(number: str, title: str, command: str):
    """Registers `write(result)`, the text of the retired experiment whose
    entry bears its name, with the command (after `python -m`) that reran it."""

    def register(write):
        RETIRED.append((number, write.__name__, title, write, command))
        return write

    return register


def _pct(s: dict) -> str:
    return stat(s, ".0f", 100) + "%"


@retired("1", "Search efficiency", "bench --scale full --only efficiency")
def efficiency(r: dict) -> str:
    by = r["by_system"]
    acc = ", ".join(f"{LABELS[k]} {by[k]['best_val_acc']['median']:.3f}" for k in by)
    return (
        "**Decided**: superseded by benchmark 7, which judges what each tool selects on "
        "10,000 unseen digits instead of its best validation accuracy on 500. **Measured** "
        f"(seed 0, {ON_EPOCHS}): ours took {by['ours']['wall_s']['median']:.0f} s, plain "
        f"Optuna {r['ratios']['optuna']['wall_speedup']['median']:.2f}x that, stock Ray Tune "
        f"{r['ratios']['stock']['wall_speedup']['median']:.2f}x; best val_acc {acc}."
    )


@retired("3", "Core utilisation", "bench --scale full --only utilisation")
def utilisation(r: dict) -> str:
    return (
        "**Decided**: core use became a goal of benchmark 7, measured on its searches "
        f"(`bench/utilisation.py`). **Measured** (seed 0, {ON_EPOCHS}): ours trained in "
        f"{_pct(r['ours'])} of the whole search's core-seconds ({_pct(r['ours_fit'])} of "
        f"`Tuner.fit`), stock Ray Tune {_pct(r['stock'])}."
    )


@retired("4", "Early stopping", "bench --scale full --only early_stopping")
def early_stopping(r: dict) -> str:
    rf = "; ".join(
        f"rf {x['reduction_factor']:g}: {x['epochs_asha']} epochs of {x['epochs_full']} "
        f"({x['epoch_ratio']:.2f}), best val_acc {-x['gap_pp']:+.2f} points, test accuracy "
        f"{-x['test_gap_pp']:+.2f}, {x['wall_asha_s']:.0f} s against {x['wall_full_s']:.0f} s"
        for x in r["rows"]
    )
    return (
        "**Decided**: ASHA stays on (grace 1 epoch, reduction factor 3); its share of the "
        "epochs stayed above the third aimed for, which led to benchmark 12. **Measured** "
        f"(seed 0, {ON_EPOCHS}), ASHA against every trial trained to the cap: {rf}."
    )


@retired("5", "Training loop", "bench --scale full --only loop")
def loop(r: dict) -> str:
    rows = "; ".join(
        f"{label}: training {x['train']:.2f}x (the model alone {x['train_ceiling']:.2f}x), "
        f"evaluation {x['eval']:.2f}x"
        for label, x in r["speedups"].items()
    )
    return (
        "**Decided**: `models.train` keeps its loop over tensors, without a `DataLoader`. "
        f"**Measured** ({r['sizes']['train']:,} digits, one thread), samples per second over "
        f"a `DataLoader` + `ToTensor` loop: {rows}."
    )


@retired("6", "Growth", "bench --only growth")
def growth(r: dict) -> str:
    e, s = r["exponents"], r["sizes"]
    return (
        "**Decided**: nothing to change. **Measured** (quick size, seed 0): a search's wall "
        f"time grew as trials^{e['trials']['wall']:.2f} ({s['trials_axis'][0]}-"
        f"{s['trials_axis'][-1]} trials) and as digits^{e['digits']['wall']:.2f} "
        f"({s['digits_axis'][0]:,}-{s['digits_axis'][-1]:,} digits)."
    )


@retired("8", "Anytime recognition", "bench --scale full --only anytime --seeds N")
def anytime(r: dict) -> str:
    last, every = r["by_search"]["last"], r["by_search"]["every_row"]
    return (
        "**Decided**: `--objective anytime` trains with `--loss all` unless told otherwise. "
        "**Measured** (seeds 0-2, judged on t10k): the winner of `--loss all --objective "
        f"anytime` scored an area under the accuracy-by-row curve of "
        f"{stat(every['t10k_auc'], '.3f')} against the default search's "
        f"{stat(last['t10k_auc'], '.3f')}, final accuracy {stat(every['t10k_acc'], '.4f')} "
        f"against {stat(last['t10k_acc'], '.4f')}, and reached 90% "
        f"{stat(r['rows_earlier_90'], '.0f')} rows earlier. The accuracy+size front held no "
        "configuration within 0.5 points of its most accurate with a quarter of its "
        f"parameters (median share {stat(r['front_ratio'], '.2f')})."
    )


@retired("9", "Which rows the loss looks at", "bench --scale full --only losses")
def losses(r: dict) -> str:
    rows = "; ".join(
        f"`{loss}` accuracy {stat(x['t10k_acc'], '.4f')}, area {stat(x['t10k_auc'], '.3f')}, "
        f"90% after {stat(x['rows_to_90'], '.0f')} rows"
        for loss, x in r["by_loss"].items()
    )
    return (
        "**Decided**: `--loss last` stays the default, and `all` is the anytime objective's "
        f"loss. **Measured** (the tutorial's configuration, {r['sizes']['epochs']} epochs, "
        f"seeds 0-2, judged on t10k): {rows}."
    )


@retired("10", "Studies that outlive a run", "bench --scale full --only studies")
def studies(r: dict) -> str:
    return (
        "**Decided**: warm starts and studies in SQLite stay as they are. **Measured** "
        f"(seeds 0-2, {ON_EPOCHS}): a search warm-started from a first one reached the "
        f"first's best val_acc after {stat(r['warm_reach_ratio'], '.2f')} of the first's "
        "wall time, and SQLite cost the searcher "
        f"{stat(r['storage_share'], '.2f', 100)}% of the wall time more than memory."
    )


@retired(
    "12", "ASHA on epochs or on training seconds", "bench --scale full --only asha_time --seeds N"
)
def asha_time(r: dict) -> str:
    sec, ep = r["by_axis"]["seconds"], r["by_axis"]["epochs"]
    return (
        "**Decided**: ASHA's rungs count training seconds by default (`--asha-time "
        f"seconds`). **Measured** (seeds 0-2): {stat(sec['wall_s'], '.0f')} s a search on "
        f"seconds against {stat(ep['wall_s'], '.0f')} s on epochs "
        f"({stat(r['wall_ratio'], '.2f')}x per seed); the winners scored "
        f"{stat(sec['selected_t10k'], '.4f')} on t10k against "
        f"{stat(ep['selected_t10k'], '.4f')} (seconds minus epochs "
        f"{stat(r['t10k_gain_pts'], '+.2f')} points); core use {_pct(sec['core_use'])} "
        f"against {_pct(ep['core_use'])}."
    )


@retired("13", "Full MNIST in a two-hour budget", FULL_MNIST)
def full_mnist(r: dict) -> str:
    return (
        "**Decided**: nothing; the check that the search reaches 99% on full MNIST. "
        f"**Measured** (one run, 2 cores, {ON_EPOCHS}): {r['trials']} trials ended the "
        f"search after {r['search_s']:,.0f} s and the confirmation took "
        f"{r['confirm_s']:,.0f} s more; the winner ({describe(r['best_config'])}) scored "
        f"{r['t10k']:.4f} on t10k, reported as {r['reported']:.4f} "
        f"[{r['reported_low']:.4f}–{r['reported_high']:.4f}]."
    )


@retired("14", "TPE's settings for parallel trials", "bench --scale full --only tpe --seeds N")
def tpe(r: dict) -> str:
    settings = ", ".join(f"`{k}={v}`" for k, v in r["default_settings"].items())
    d = r["by_variant"]["default"]
    rows = "; ".join(
        f"`{name}` {stat(x['t10k_gain_pts'], '+.2f')} points at "
        f"{stat(x['wall_ratio'], '.2f')}x the time"
        for name, x in r["against_default"].items()
    )
    return (
        f"**Decided**: TPE runs with {settings} (`search.searcher.TPE_SETTINGS`; an earlier "
        "run against 10 start-up trials chose 20). **Measured** (seeds 0-2): with these "
        f"settings the winners scored {stat(d['selected_t10k'], '.4f')} on t10k in "
        f"{stat(d['wall_s'], '.0f')} s; each change alone: {rows}. None beat them by more "
        "than one run's noise (+0.3 points at no more than 1.2x the time, or at most 0.8x "
        "the time within 0.3 points)."
    )


@retired(
    "16",
    "Sequence data: the patch and the early objective's loss",
    "bench --scale full --only sequence_defaults",
)
def sequence_defaults(r: dict) -> str:
    sets = {p["set"]: [] for p in r["patches"]}
    for p in r["patches"]:
        sets[p["set"]].append(f"{p['patch']}: {p['test_acc']:.3f} ({p['epoch_s']:.2f} s)")
    patches = "; ".join(f"{name}, patch {', '.join(x)}" for name, x in sets.items())
    hm = {}
    for p in r["losses"]:
        hm.setdefault(p["set"], {}).setdefault(p["loss"], []).append(p["test_hm"])
    losses = "; ".join(
        f"{name}, " + ", ".join(f"{k} {min(v):.2f}-{max(v):.2f}" for k, v in by.items())
        for name, by in hm.items()
    )
    return (
        "**Decided**: the space searches the patch (`search.space.patch_choices`): no patch "
        "won everywhere; `--objective early` trains with `--loss uniform`. **Measured** "
        "(seed 0, 5-fold cross-validation): test accuracy and seconds an epoch of the "
        f"tutorial's network per patch, {patches}. Test HM of the early classifier per loss "
        f"(two learning rates): {losses}."
    )


@retired("", "ASHA replayed on recorded curves", "bench --scale full --only winner")
def replay(r: dict) -> str:
    rows = "; ".join(
        f"on {x['time_axis']}, rf {x['reduction_factor']}: {stat(x['epoch_ratio'], '.2f')} of "
        f"the epochs, {stat(x['wall_ratio'], '.2f')} of the simulated wall time, best val_acc "
        f"{stat(x['gap_pp'], '+.2f')} points lower"
        for x in r["replay"]
    )
    return (
        "**Decided**: settings of ASHA are chosen by real searches (benchmark 12), not by "
        "replaying Ray's rung rule on recorded curves, which needed Ray's private "
        "rung class and could not model how TPE proposes under ASHA. **Measured** on plain "
        f"Optuna's curves of benchmark 7 (seeds {', '.join(map(str, r['replay'][0]['seeds']))}"
        f", every trial trained to the cap, grace 1): {rows}."
    )


def render(results: dict) -> str:
    sections = [
        "## Retired experiments",
        "These benchmarks chose a default or answered a question once. Their code left "
        f"`bench/` after commit `{COMMIT}`; `docs/benchmarks.json` keeps each one's entry "
        "(command, date, machine and every figure), from which this section is written. "
        "At the issue's size (50 trials, 2 cores) unless said; medians [min–max] over seeds.",
    ]
    for number, name, title, write, command in RETIRED:
        scales = results.get(name, {})
        if not scales:
            continue
        entry = scales.get("full", scales.get("quick"))
        sections += [
            f"### {number + '. ' if number else ''}{title}",
            f"{write(entry['result'])} Measured {entry['date'][:10]}; rerun with "
            f"`git checkout {COMMIT} && python -m {command}`.",
        ]
    return "\n\n".join(sections)
