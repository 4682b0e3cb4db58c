"""Benchmark 18: what `--track mlflow` costs the default search, with a local MLflow
server (SQLite, loopback) started for the benchmark.

Each seed runs the default search (`python -m search.run`'s defaults: only the seed, the
run folder and the tracker differ) twice, once tracked and once not, in alternating
order so that the machine's drift over a session falls on both sides. Two measures:
the wall time of the whole command (report included: tracking adds the report's upload),
and the driver's own time in the trackers' calls (the search's side, and waiting at the
end for the trials' calls), which is what tracking adds to the driver's critical path;
the trials' side runs on a thread of its own, whose busy time is shown beside it.
"""

from __future__ import annotations

import threading
import time

from bench.common import BenchConfig, Searches, fmt, goal, run_child, stat, summary, table

TITLE = "18. Tracking overhead"
GOAL = 0.02  # tracking costs at most 2% of the default search's wall time


def measure(seed: int, uri: str | None, workdir: str, name: str) -> dict:
    """In a child process: the default search of `seed`, through `search.api.run` as the
    command line runs it, tracked to the MLflow server at `uri` (None: not tracked)."""
    from search import api, tracking

    # The benchmark's own instrument: every tracker call goes through Trackers._call,
    # from the driver's thread (the search's side, and waiting for the trials' calls at
    # the end) or from the trackers' own thread (the trials' side, off Tune's loop).
    spent = {"driver": 0.0, "background": 0.0}

    def timed(function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                on_driver = threading.current_thread() is threading.main_thread()
                spent["driver" if on_driver else "background"] += time.perf_counter() - started

        return wrapper

    # wait and _call are not nested in each other: `call` runs one, then the other.
    for method in ("_call", "wait", "later"):
        setattr(tracking.Trackers, method, timed(getattr(tracking.Trackers, method)))
    flags = {"seed": seed, "storage_path": f"{workdir}/runs", "name": name}
    if uri is not None:
        flags["track"] = [f"mlflow={uri}"]
    started = time.perf_counter()
    run = api.run(**flags)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "tracker_s": spent["driver"],
        "background_s": spent["background"],
        "search_s": run.record.wall_seconds,
        "trials": len(run.trials),
    }


def run(c: BenchConfig, searches: Searches) -> dict:
    from bench.mlflow_server import MlflowServer

    server = MlflowServer()
    rows = []
    try:
        for i, seed in enumerate(c.seeds):
            walls = {}
            for tracked in (False, True) if i % 2 == 0 else (True, False):
                name = f"{'tracked' if tracked else 'plain'}-s{seed}"
                job = {"kind": "tracking", "seed": seed, "workdir": c.workdir, "name": name}
                walls[tracked] = run_child(job | {"uri": server.uri if tracked else None}, c)
            plain, tracked = walls[False], walls[True]
            rows.append(
                {
                    "seed": seed,
                    "first": "plain" if i % 2 == 0 else "tracked",
                    "plain_s": plain["wall_s"],
                    "tracked_s": tracked["wall_s"],
                    "tracker_s": tracked["tracker_s"],
                    "background_s": tracked["background_s"],
                    "trials": tracked["trials"],
                }
            )
    finally:
        server.stop()
    return {
        "sizes": {"search": "python -m search.run's defaults", "seeds": c.seeds},
        "per_seed": rows,
        "wall_overhead": summary([r["tracked_s"] / r["plain_s"] - 1 for r in rows]),
        "inside_share": summary([r["tracker_s"] / r["tracked_s"] for r in rows]),
    }


def goals(r: dict) -> list[dict]:
    wall, inside = r["wall_overhead"], r["inside_share"]
    return [
        goal(
            f"tracking (MLflow, local server) costs at most {GOAL:.0%} of the default "
            "search's wall time (median of the seeds)",
            f"{stat(wall, '+.1%')} wall time tracked against not, per seed; the driver "
            f"spent {stat(inside, '.2%')} of the tracked wall time in the trackers' calls",
            wall["median"] <= GOAL,
        )
    ]


def render(r: dict) -> str:
    rows = [
        {
            "seed": x["seed"],
            "ran first": x["first"],
            "not tracked s": fmt(x["plain_s"], ".0f"),
            "tracked s": fmt(x["tracked_s"], ".0f"),
            "ratio": f"{x['tracked_s'] / x['plain_s']:.3f}",
            "driver in trackers s": fmt(x["tracker_s"], ".1f"),
            "share of tracked": f"{x['tracker_s'] / x['tracked_s']:.2%}",
            "trackers' thread s": fmt(x["background_s"], ".1f"),
        }
        for x in r["per_seed"]
    ]
    return "\n\n".join(
        [
            "The default search (`python -m search.run`, 50 trials, report included) per "
            "seed, once with `--track mlflow=http://127.0.0.1:PORT` (an `mlflow server` on "
            "SQLite, started for the benchmark on this machine) and once without, in "
            "alternating order. The wall ratio carries the machine's noise (the same search "
            "has varied by tens of percent); the driver's time in the trackers' calls is "
            "what tracking adds to its loop, measured in the run itself. The trials' calls "
            "run on the trackers' own thread (their busy time: the last column), beside "
            "the trials, as does the MLflow server on this machine's 2 cores.",
            table(rows),
        ]
    )
