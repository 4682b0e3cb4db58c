"""Benchmark 17: a search under a seeded series of faults, resumed after each until it ends.

The search runs on a two-node Ray cluster on this machine (a head and a worker node, one
trial slot each, the run folder on a disk both see). At random moments it is hit by one of:
SIGKILL of the driver, SIGTERM of the driver (`ray job stop`, a scheduler), SIGKILL of a
trial's worker, or the loss of the worker node (a new one joins in its place). After a
driver fault the search is resumed with the command the CLI prints; the
others it must survive while it runs. Then nothing may be lost:

- every trial appears once in trials.csv, none failed (trials get retries enough);
- the Optuna study and Tune agree on every trial (state and study number);
- no trial restarted from further back than its last reported epoch;
- `best/` loads and classifies.

A session that does not end in its time (a hang) is a problem too, given with a py-spy
dump of its driver and the end of its stderr.

`tests/test_chaos.py` runs a few faults in the suite; `python -m bench --only chaos` runs
`chaos_faults` of them (30 at the issue's size).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import BenchConfig, Searches, goal, table
from search.run_folder import TRIALS_CSV, load_best
from tests.ray_nodes import Cluster
from tests.run_checks import epochs_reported, expected_study_trials, study_trials

TITLE = "17. Chaos: faults survived by one search"
SPACING_S = (3.0, 15.0)  # seconds between faults, drawn uniformly
FAULTS = ("driver SIGKILL", "driver SIGTERM", "trial worker SIGKILL", "node lost")
REPO = Path(__file__).resolve().parent.parent
# A SIGTERM'd driver saves Tune's state and ends (exit 130) within seconds; a SIGKILL'd
# one at once.
DRIVER_STOP_S = 120


@dataclass
class ChaosLog:
    """What happened: the faults dealt, the sessions the search took, what was lost."""

    faults: list[str] = field(default_factory=list)
    sessions: int = 0
    problems: list[str] = field(default_factory=list)


class Session(subprocess.Popen):
    """One driver session, in a process group of its own; its stderr goes to `log` (a
    pipe nobody drains would stop a driver that writes much: Ray's and Tune's tracebacks
    of the killed workers)."""

    def __init__(self, cluster: Cluster, args: list[str], log: Path):
        self.log = log
        with log.open("w") as stderr:
            super().__init__(
                [sys.executable, "-m", "search.run", "--address", cluster.address, *args],
                cwd=REPO,
                env=cluster.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def hung(self, waited: float, after: str) -> str:
        """A problem line for a session that did not end: where its driver stands (py-spy's
        dump of its threads) and the end of what it printed."""
        try:
            dump = subprocess.run(
                [str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(self.pid)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            stack = dump.stdout[-6000:] + dump.stderr[-500:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            stack = f"(none: {exc})"
        return (
            f"{self.log.stem} did not end {waited:.0f} s after {after}\n"
            f"py-spy dump of the driver:\n{stack}\n"
            f"end of its stderr:\n{self.stderr_tail()}"
        )

    def stderr_tail(self) -> str:
        return self.log.read_text()[-3000:]

    def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(timeout=60)


class Hung(Exception):
    """A session did not end in its time (the message says where its driver stood)."""


def kill_a_trial_worker(run_dir: Path) -> bool:
    """SIGKILL the process of the trial that reported last, if it still runs."""
    latest = [(r[-1]["timestamp"], r[-1]["pid"]) for r in epochs_reported(run_dir).values() if r]
    for _, pid in sorted(latest, reverse=True):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            return True
    return False


def chaos_search(
    workdir: Path,
    faults: int,
    seed: int,
    trials: int,
    max_epochs: int,
    spacing: tuple[float, float] = SPACING_S,
) -> ChaosLog:
    """One search hit by `faults` faults drawn with `seed`, `spacing` seconds apart (drawn
    uniformly), resumed until it ends; then checked (ChaosLog.problems: what was lost).

    A session that does not end in its time is a problem too, named with where its driver
    stood: far more than a whole search of this size takes on two cores (about 20 s an
    epoch at the worst), and `DRIVER_STOP_S` after a SIGTERM."""
    limit = 120 + 20 * trials * max_epochs
    rng = random.Random(seed)
    log = ChaosLog()
    runs = workdir / "runs"
    run_dir = runs / "chaos"
    first = ["--storage-path", str(runs), "--name", "chaos", "--shared-storage"]
    sizes = ["--trials", str(trials), "--max-epochs", str(max_epochs), "--seed", str(seed)]
    # Retries enough for every fault to land on one trial; reports are the CLI's job.
    rest = ["--max-failures", str(faults + 1), "--confirm-top", "0", "--no-report"]
    cluster = Cluster(workdir)
    try:
        cluster.start(workers=1)
        args = [*first, *sizes, *rest]
        while True:
            log.sessions += 1
            session = Session(cluster, args, workdir / f"session-{log.sessions}.log")
            try:
                ended = _deal_faults(session, cluster, run_dir, rng, log, faults, spacing, limit)
            except Hung as hung:
                log.problems.append(str(hung))
                break
            if ended == 0:
                break
            if ended not in (-signal.SIGKILL, 130):
                log.problems.append(
                    f"{session.log.stem} ended with status {ended}:\n{session.stderr_tail()}"
                )
                break
            # Killed before Tune saved anything: the search starts again, as its user would
            # (the CLI said "nothing was saved").
            resumable = (run_dir / "tuner.pkl").exists()
            args = [*first, "--resume"] if resumable else [*first, *sizes, *rest, "--overwrite"]
    finally:
        cluster.stop()
    if not log.problems:
        log.problems += check(run_dir, trials)
    return log


def _deal_faults(
    session: Session,
    cluster: Cluster,
    run_dir: Path,
    rng: random.Random,
    log: ChaosLog,
    faults: int,
    spacing: tuple[float, float],
    limit: float,
) -> int:
    """Faults at random moments until one ends the driver or the search ends; its status.
    Hung when the session outlives `limit` seconds, or a SIGTERM by `DRIVER_STOP_S`."""
    started = time.monotonic()

    def ended(timeout: float, after: str) -> int:
        try:
            return session.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Hung(session.hung(time.monotonic() - started, after)) from None

    try:
        while len(log.faults) < faults:
            # A moment in the driver's start-up, or within the trials' run.
            with contextlib.suppress(subprocess.TimeoutExpired):
                return session.wait(timeout=rng.uniform(*spacing))
            if time.monotonic() - started > limit:
                raise Hung(session.hung(time.monotonic() - started, "it started"))
            fault = rng.choice(FAULTS)
            if fault == "driver SIGKILL":
                os.killpg(session.pid, signal.SIGKILL)
            elif fault == "driver SIGTERM":
                session.send_signal(signal.SIGTERM)
            elif fault == "trial worker SIGKILL":
                if not kill_a_trial_worker(run_dir):
                    continue  # no trial has run yet: draw again
            else:
                cluster.nodes[-1].kill()  # the newest worker node
                cluster.add_worker()
            log.faults.append(fault)
            if fault.startswith("driver"):
                return ended(DRIVER_STOP_S, fault)
        return ended(max(limit - (time.monotonic() - started), 0), "it started")
    finally:
        session.end()


def check(run_dir: Path, trials: int) -> list[str]:
    """What the finished search lost, in words; [] when nothing."""
    problems = []
    table_ = pd.read_csv(run_dir / TRIALS_CSV, keep_default_na=False)
    if len(table_) != trials or not table_["trial_id"].is_unique:
        problems.append(f"trials.csv lists {len(table_)} trials for {trials}")
    if (table_["status"] == "failed").any():
        problems.append(f"failed trials: {list(table_[table_['status'] == 'failed'].trial_id)}")
    states, expected = study_trials(run_dir), expected_study_trials(table_)
    if states != expected:
        problems.append(f"the study and Tune disagree: {states} != {expected}")
    for trial, lines in epochs_reported(run_dir).items():
        epochs = [line["epoch"] for line in lines]
        steps = np.diff(epochs)
        if len(steps) and (steps.min() < 0 or steps.max() > 1):
            problems.append(f"{trial} reported epochs {epochs}")
    try:
        winner = load_best(run_dir)
        winner.predict(np.zeros((2, 28, 28)))
    except Exception as exc:  # what the user would meet, in one line
        problems.append(f"best/ does not load: {exc!r}")
    return problems


def measure(faults: int, seed: int, trials: int, max_epochs: int, workdir: str) -> dict:
    started = time.monotonic()
    log = chaos_search(Path(workdir), faults, seed, trials, max_epochs)
    return {
        "faults": log.faults,
        "sessions": log.sessions,
        "problems": log.problems,
        "seconds": round(time.monotonic() - started, 1),
    }


def run(c: BenchConfig, searches: Searches) -> dict:
    seed = c.seeds[0]
    workdir = Path(c.workdir) / f"chaos-{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    result = measure(c.chaos_faults, seed, c.chaos_trials, c.max_epochs, str(workdir))
    return result | {"seed": seed, "trials": c.chaos_trials, "max_epochs": c.max_epochs}


def summary(problems: list[str]) -> str:
    """The problems' first lines, for a table cell (benchmarks.json keeps them whole)."""
    return "; ".join(problem.splitlines()[0] for problem in problems)


def goals(r: dict) -> list[dict]:
    lost = summary(r["problems"]) or "nothing lost"
    return [
        goal(
            "faults dealt at random moments of one search: nothing lost",
            f"{len(r['faults'])} faults, {lost}",
            not r["problems"],
        )
    ]


def render(r: dict) -> str:
    counts = pd.Series(r["faults"]).value_counts() if r["faults"] else pd.Series(dtype=int)
    rows = [{"fault": f, "times": int(counts.get(f, 0))} for f in FAULTS]
    lost = summary(r["problems"]) or "nothing"
    return "\n\n".join(
        [
            f"One search of {r['trials']} trials (cap {r['max_epochs']} epochs, seed "
            f"{r['seed']}) on a two-node cluster: {len(r['faults'])} faults, "
            f"{SPACING_S[0]:.0f}-{SPACING_S[1]:.0f} s apart, in {r['sessions']} driver "
            f"sessions, {r['seconds']:.0f} s. Lost: {lost}.",
            table(rows),
        ]
    )
