"""`python -m bench`: run the benchmarks, print their tables, write docs/benchmarks.{json,md}.

The default (`--scale quick`) took 37 minutes on 2 shared cores; `--scale full` is the
issue's size (50 trials, 8-epoch cap, 3 seeds; growth to 200 trials and, with
`--full-mnist`, to 60,000 digits) and takes hours there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.report import REPORT_MD, RESULTS_JSON, load_results, render, text_summary
from bench.suite import BENCHMARKS, RUN_ORDER, RUNNERS, BenchConfig, Searches

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "datasets" / "mnist"
SCALES = {
    "quick": BenchConfig(),
    "full": BenchConfig(
        trials=50,
        max_epochs=8,
        target_acc=0.95,
        overhead_trials=5,
        loop_epochs=5,
        growth_trials=[10, 50, 200],
        growth_sizes=[5000, 15000, 60000],
        growth_search_trials=50,
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    p.add_argument("--scale", choices=SCALES, default="quick", help="preset sizes (quick)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (quick/full: 0 1 2)")
    p.add_argument("--trials", type=int, help="trials per search (quick 8, full 50)")
    p.add_argument("--max-epochs", type=int, help="epoch cap (quick 4, full 8)")
    p.add_argument("--target-acc", type=float, help="val_acc target (quick 0.88, full 0.95)")
    p.add_argument("--growth-trials", type=int, nargs="+", help="trial counts for benchmark 6")
    p.add_argument("--growth-sizes", type=int, nargs="+", help="digit counts for benchmark 6")
    p.add_argument(
        "--growth-data-trials", type=int, help="trials per search on the digits axis (4/50)"
    )
    p.add_argument(
        "--full-mnist",
        nargs="?",
        const=str(SHARED_MNIST),
        metavar="DIR",
        help=f"use the full MNIST IDX files in DIR (default {SHARED_MNIST}) instead of "
        "the 5k digits; benchmark 6 then grows the data from this source",
    )
    p.add_argument("--workdir", help="where run folders go (default: a temporary folder)")
    p.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.* alone"
    )
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, workdir: str) -> BenchConfig:
    base = SCALES[args.scale]
    config = BenchConfig(**{**vars(base), "workdir": workdir})
    for name in ("seeds", "trials", "max_epochs", "target_acc", "growth_trials", "growth_sizes"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.growth_data_trials is not None:
        config.growth_search_trials = args.growth_data_trials
    if args.full_mnist:
        if not Path(args.full_mnist).is_dir():
            raise SystemExit(f"python -m bench: error: {args.full_mnist} is not a folder")
        config.dataset, config.data_dir = "mnist", str(Path(args.full_mnist).resolve())
    return config


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    packages = {"python": platform.python_version()}
    for name in ("torch", "ray", "optuna"):
        packages[name] = metadata.version(name)
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20),
        "platform": platform.platform(),
        "packages": packages,
        "load_before": _load(),
    }


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[bench %(asctime)s] %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    names = [n for n in RUN_ORDER if n in (args.only or BENCHMARKS)]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = args.workdir or tmp
        Path(workdir).mkdir(parents=True, exist_ok=True)
        config = make_config(args, str(Path(workdir).resolve()))
        searches = Searches(config)
        results = load_results()
        for name in names:
            info = machine()
            started = time.monotonic()
            result = RUNNERS[name](config, searches)
            info["load_after"] = _load()
            print(text_summary(name, result), flush=True)
            # Each benchmark keeps one entry per size preset: a quick rerun does not
            # replace the issue-size figures, nor the other way round.
            results.setdefault(name, {})[args.scale] = {
                "command": command,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                # Searches shared with an earlier benchmark of this invocation are not
                # counted again here.
                "seconds": time.monotonic() - started,
                "machine": {**info, "load_before": info["load_before"]},
                "result": result,
            }
            if not args.no_write:  # after every benchmark: a later crash loses nothing
                RESULTS_JSON.parent.mkdir(exist_ok=True)
                RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
                REPORT_MD.write_text(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
