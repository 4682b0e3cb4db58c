"""A seeded random sample of each module's mutants, and the score it estimates.

The whole set (about 3,600 mutants) is more than a day's run on 2 cores, so a module's
score can be estimated from a random sample of its mutants instead, with a 95% interval:

    python -m tests.mutation_sample names --per-module 40 --seed 0 > sample.txt
    mutmut run $(cat sample.txt)        # runs (or reruns) exactly those mutants
    python -m tests.mutation_sample score sample.txt

Run in the repository root, after `mutmut run` has generated the mutants once (it lists
them with `mutmut results --all true`). A module with fewer mutants than `--per-module`
is taken whole. Score = killed / (killed + survived + timeout); a mutant no test reaches
counts as survived, as mutmut's own score does.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from scipy.stats import binomtest

# "    search.confirm.x_confirm__mutmut_12: killed"
_LINE = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+)$")
KILLED = {"killed"}
COUNTED = {"killed", "survived", "timeout", "no tests"}


def mutants() -> dict[str, str]:
    """Every mutant's name -> its status (from `mutmut results --all true`)."""
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m["name"]: m["status"] for m in map(_LINE.match, listing.splitlines()) if m}


def module_of(name: str) -> str:
    """ "search.confirm.xǁFoldResultǁcorrect__mutmut_3" -> "search.confirm"."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def sample(names: list[str], per_module: int, seed: int) -> list[str]:
    by_module = defaultdict(list)
    for name in sorted(names):
        by_module[module_of(name)].append(name)
    rng = random.Random(seed)
    picked = []
    for module in sorted(by_module):
        group = by_module[module]
        picked += group if len(group) <= per_module else rng.sample(group, per_module)
    return picked


def scores(statuses: dict[str, str], names: list[str]) -> list[tuple[str, int, int, int]]:
    """Per module: (module, killed, counted, not yet run) over `names`."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for name in names:
        status, row = statuses.get(name, "not checked"), table[module_of(name)]
        if status in COUNTED:
            row[0] += status in KILLED
            row[1] += 1
        else:
            row[2] += 1
    return [(module, *row) for module, row in sorted(table.items())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation_sample")
    commands = parser.add_subparsers(dest="command", required=True)
    names = commands.add_parser("names", help="print a seeded sample of each module's mutants")
    names.add_argument("--per-module", type=int, default=40)
    names.add_argument("--seed", type=int, default=0)
    score = commands.add_parser("score", help="the score of each module over a sample file")
    score.add_argument("sample", type=Path)
    args = parser.parse_args(argv)

    statuses = mutants()
    if args.command == "names":
        print("\n".join(sample(list(statuses), args.per_module, args.seed)))
        return
    picked = args.sample.read_text().split()
    print("| module | sampled | killed | score | 95% interval | not run yet |")
    print("| --- | --- | --- | --- | --- | --- |")
    for module, killed, counted, pending in scores(statuses, picked):
        if counted:
            low, high = binomtest(killed, counted).proportion_ci(method="wilson")
            figures = f"{killed / counted:.0%} | {low:.0%}-{high:.0%}"
        else:
            figures = "- | -"
        print(f"| `{module}` | {counted} | {killed} | {figures} | {pending} |")


if __name__ == "__main__":
    main()
