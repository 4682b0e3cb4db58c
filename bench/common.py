"""What every benchmark shares: its sizes, the searches it draws on (each run once, in a
child process), statistics over seeds, and the Markdown its section is written in."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tabulate import DataRow, TableFormat

from bench.systems import SearchSpec
from models.train import SeriesTensors
from search.config import SearchConfig
from search.errors import UserError
from search.sources import find_idx_files, read_idx
from search.space import PARAMS, format_param

log = logging.getLogger("bench")
# MNIST's IDX files, where a machine has them: the t10k digits judge benchmarks 7 and 15.
SHARED_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "mnist"


@dataclass
class BenchConfig:
    """Sizes of one benchmark invocation (see `python -m bench --help`)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    trials: int = 8
    max_epochs: int = 4
    overhead_trials: int = 3
    # Benchmarks 7 and 15: their epoch cap (None: max_epochs), and the judge's MNIST t10k files.
    winner_max_epochs: int | None = None
    t10k_dir: str = str(SHARED_MNIST)
    # Benchmark 15: the archive sets it runs (None: all five), and whether our searches
    # and the peer's run (each merges into the entry on its own).
    sets: list[str] | None = None
    ours: bool = True
    peers: bool = True
    # Benchmark 17: faults dealt to one search of `chaos_trials` trials.
    chaos_faults: int = 8
    chaos_trials: int = 24
    workdir: str = ""


def has_t10k(c: BenchConfig, title: str) -> bool:
    """Whether the judge's files (MNIST's t10k digits) are in `c.t10k_dir`; if not, says
    that the benchmark `title` is skipped (nothing is downloaded)."""
    try:
        find_idx_files(Path(c.t10k_dir))
    except UserError:
        print(f"{title}: skipped, no MNIST t10k files in {c.t10k_dir} (nothing is downloaded)")
        return False
    return True


def load_t10k(t10k_dir: str) -> SeriesTensors:
    """MNIST's t10k digits as a split: values (10000, 28, 28) uint8, lengths, labels."""
    files = find_idx_files(Path(t10k_dir))
    images = torch.from_numpy(read_idx(files["test_images"]))
    labels = torch.from_numpy(read_idx(files["test_labels"]).astype("int64"))
    return SeriesTensors(images, torch.full((len(images),), 28), labels)


class Searches:
    """Runs searches in child processes, each once, and keeps their measurements: a search
    that two benchmarks need (e.g. ours on seed 0) runs once per invocation."""

    def __init__(self, config: BenchConfig) -> None:
        self.config, self._done = config, {}

    def get(self, system: str, seed: int, **overrides) -> dict:
        c = self.config
        spec = SearchSpec(system, seed, c.trials, c.max_epochs, workdir=c.workdir)
        spec = dataclasses.replace(spec, **overrides)
        if spec not in self._done:
            log.info("search: %s", dataclasses.asdict(spec))
            done = self._done[spec] = run_child({"kind": "search", **dataclasses.asdict(spec)}, c)
            log.info("  -> %.0f s, best val_acc %.4f", done["wall_s"], done["best_val_acc"])
        return self._done[spec]


def run_child(job: dict, config: BenchConfig) -> dict:
    """Run `job` through `python -m bench.child` and return what it measured.

    Ray's and Tune's chatter goes to a log file per job, kept with the run folders, and
    the measurements to a JSON file beside it, with the job itself. A job already done in
    this workdir (an invocation cut short, run again) is read back, not run again."""
    logs = Path(config.workdir) / "logs"
    logs.mkdir(exist_ok=True)
    if (done_before := _measured(logs, job)) is not None:
        log.info("  (measured before: %s)", done_before)
        return json.loads(done_before.read_text())
    name = f"{len(list(logs.glob('*.log'))):03d}-{job['kind']}-{job.get('system', '')}"
    log_path, out_path = logs / f"{name}.log", logs / f"{name}.json"
    (logs / f"{name}.job").write_text(json.dumps(job, sort_keys=True))
    with log_path.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "bench.child", json.dumps(job), str(out_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        raise RuntimeError(f"bench job {job} failed (log {log_path}):\n{tail}")
    return json.loads(out_path.read_text())


def _measured(logs: Path, job: dict) -> Path | None:
    """The measurements of `job` from an earlier invocation in `logs`, if it finished."""
    wanted = json.dumps(job, sort_keys=True)
    for job_file in sorted(logs.glob("*.job")):
        out_path = job_file.with_suffix(".json")
        if job_file.read_text() == wanted and out_path.is_file():
            return out_path
    return None


def summary(values: list[float | None]) -> dict:
    """Median and [min, max] of per-seed values; both None if any value is (e.g. a target
    never reached)."""
    known = bool(values) and None not in values
    return {
        "median": float(statistics.median(values)) if known else None,
        "range": [float(min(values)), float(max(values))] if known else None,
        "values": values,
    }


def search_sizes(c: BenchConfig, max_epochs: int) -> dict:
    """The sizes a benchmark of whole searches records (its seeds are added per row), with
    what ours' ASHA counted: seeds measured under another default start a new entry."""
    sizes = {"trials": c.trials, "max_epochs": max_epochs, "dataset": "mnist-5k"}
    return sizes | {"cpus": os.cpu_count(), "asha_time": default_asha_time()}


def default_asha_time() -> str:
    """`search.run`'s --asha-time default."""
    return next(f.default for f in dataclasses.fields(SearchConfig) if f.name == "asha_time")


def ours_asha_time(sizes: dict) -> str:
    """What ASHA counted in ours' searches of an entry (entries from before it was
    recorded ran on epochs)."""
    return sizes.get("asha_time", "epochs")


def merge_rows(old: dict, new: dict, key, summarise) -> dict:
    """`new`'s rows added to `old`'s (a row with the same `key(row)` is replaced) and
    summarised again by `summarise(rows, sizes)`; `new` alone where the sizes differ."""
    if {**old["sizes"], "seeds": None} != {**new["sizes"], "seeds": None}:
        log.info("sizes differ from the stored entry's; its seeds are dropped")
        return new
    fresh = {key(r) for r in new["per_seed"]}
    kept = [r for r in old["per_seed"] if key(r) not in fresh]
    return summarise(kept + new["per_seed"], new["sizes"])


def seeds_held(seeds: list[int]) -> str:
    """How a merged entry says which seeds it holds."""
    n = len(seeds)
    held = f"{n} seed{'s' * (n != 1)} ({', '.join(map(str, seeds))})"
    return f"This entry holds {held}; `--seeds N` adds or replaces one."


def goal(text: str, measured: str, met: bool | None) -> dict:
    return {"goal": text, "measured": measured, "met": met}


def describe(config: dict) -> str:
    """A configuration in one line, each value as `search.space.format_param` writes it."""
    p = {name: format_param(name, config.get(name)) for name in PARAMS}
    patch = f", patch {p['patch']}" if config.get("patch", 1) != 1 else ""
    return (
        f"{p['num_layers']}x{p['hidden_size']}, drop {p['dropout']}, fb {p['forget_bias']}, "
        f"lr {p['lr']}, batch {p['batch_size']}{patch}"
    )


def fmt(value, spec: str = ".1f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def stat(s: dict, spec: str = ".1f", scale: float = 1.0, none: str = "n/a") -> str:
    """`median [min–max]` of a `summary` (of one value: the value)."""
    if s["median"] is not None and len(s["values"]) == 1:
        return format(s["median"] * scale, spec)
    if s["median"] is None:
        reached = [v for v in s["values"] if v is not None]
        return f"{none} ({len(reached)}/{len(s['values'])} reached)"
    med, lo, hi = (format(v * scale, spec) for v in (s["median"], *s["range"]))
    return f"{med} [{lo}–{hi}]"


# GitHub's pipe table with its cells as they are: no alignment padding, "|---|" rules.
_PIPE = TableFormat(
    lineabove=None,
    linebelowheader=lambda widths, _aligns: "|" + "---|" * len(widths),
    linebetweenrows=None,
    linebelow=None,
    headerrow=DataRow("|", "|", "|"),
    datarow=DataRow("|", "|", "|"),
    padding=1,
    with_header_hide=None,
)


def table(rows: list[dict] | list[list], columns: list[str] | None = None) -> str:
    """A Markdown table of `rows`: dicts (their keys are the header) or lists (`columns`)."""
    frame = pd.DataFrame(rows, columns=columns).astype(str)
    return frame.to_markdown(
        index=False, tablefmt=_PIPE, stralign=None, numalign=None, disable_numparse=True
    )
