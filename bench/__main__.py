"""`python -m bench`: run the benchmarks, print their tables, write docs/benchmarks.{json,md}.

`--scale quick` (the default) is a reduced size; `--scale full` is the issue's size (50
trials, 8-epoch cap (benchmarks 7 and 15: 12), 3 seeds) and takes hours on 2 cores. A
benchmark with a `merge` (7, 15) adds the seeds of a run to those already in
docs/benchmarks.json, so `--only winner --seeds 1` measures one seed per session.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from bench.common import SHARED_MNIST, BenchConfig, Searches
from bench.report import BENCHMARKS, REPORT_MD, RESULTS_JSON, load_results, render, text_summary

SCALES = {
    "quick": BenchConfig(),
    "full": BenchConfig(
        trials=50,
        max_epochs=8,
        overhead_trials=5,
        winner_max_epochs=12,
        chaos_faults=30,
        chaos_trials=100,
    ),
}
FIELDS = {f.name for f in dataclasses.fields(BenchConfig)}  # flags that set a size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    p.add_argument("--scale", choices=SCALES, default="quick", help="preset sizes (quick)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (quick/full: 0 1 2)")
    p.add_argument("--trials", type=int, help="trials per search (quick 8, full 50)")
    p.add_argument("--max-epochs", type=int, help="epoch cap (quick 4, full 8)")
    p.add_argument(
        "--winner-max-epochs", type=int, help="benchmarks 7 and 15's epoch cap (full 12)"
    )
    p.add_argument(
        "--t10k-dir",
        metavar="DIR",
        help=f"MNIST's IDX files, whose t10k digits judge benchmarks 7 and 15 (default "
        f"{SHARED_MNIST}; nothing is downloaded)",
    )
    p.add_argument("--sets", nargs="+", help="benchmark 15's archive sets (default: all five)")
    p.add_argument(
        "--no-peers",
        dest="peers",
        action="store_false",
        default=None,
        help="benchmark 15: our searches only, not the plain Optuna peer",
    )
    p.add_argument(
        "--peers-only",
        dest="ours",
        action="store_false",
        default=None,
        help="benchmark 15: the plain Optuna peer only (merged beside our searches' rows)",
    )
    p.add_argument("--workdir", help="where run folders go (default: a temporary folder)")
    p.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.* alone"
    )
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, workdir: str) -> BenchConfig:
    """The preset of `--scale`, with the sizes given on the command line."""
    given = {k: v for k, v in vars(args).items() if k in FIELDS and v is not None}
    return dataclasses.replace(SCALES[args.scale], **(given | {"workdir": workdir}))


def machine() -> dict:
    versions = {name: metadata.version(name) for name in ("torch", "ray", "optuna")}
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "platform": platform.platform(),
        "packages": {"python": platform.python_version(), **versions},
        "load_before": _load(),
    }


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[bench %(asctime)s] %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    names = args.only or list(BENCHMARKS)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = args.workdir or tmp
        Path(workdir).mkdir(parents=True, exist_ok=True)
        config = make_config(args, str(Path(workdir).resolve()))
        searches = Searches(config)
        results = load_results()
        for name in names:
            info = machine()
            started = time.monotonic()
            module = BENCHMARKS[name]
            result = module.run(config, searches)
            if result is None:  # skipped: it said why
                continue
            old = results.get(name, {}).get(args.scale)
            if old and hasattr(module, "merge"):  # e.g. one seed per session
                result = module.merge(old["result"], result)
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
                "machine": info,
                "result": result,
            }
            if not args.no_write:  # after every benchmark: a later crash loses nothing
                RESULTS_JSON.parent.mkdir(exist_ok=True)
                RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
                REPORT_MD.write_text(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
