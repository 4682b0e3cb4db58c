"""Benchmark 18: what `--track mlflow` costs the default search, with a local MLflow
server (SQLite, loopback) started for the benchmark.

Each seed runs the default search (`python -m search.run`'s defaults: only the seed, the
run folder and the tracker differ) twice, once tracked and once not, in alternating
order so that the machine's drift over a session falls on both sides. Two searches of
one seed do not do the same work, though: ASHA judges on training seconds, and which
trials it stops, and so what TPE proposes next, follows the machine's timing. Their wall
ratio carries that (tens of percent either way), so the goal is judged on what tracking
takes from the machine, measured in the tracked run itself:

- the CPU time of the trackers' work: the MLflow server's processes over the run, and
  the driver's trackers' thread (the trials' side);
- over the run's CPU capacity (its wall time times the cores): on a machine the trials
  keep busy, a core-second tracking takes is one the trials lose;
- and the driver's own time in the trackers' calls (the search's side, and waiting at the
  end for the trials' calls): what tracking adds to the driver's critical path.
"""

from __future__ import annotations

import os
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
    spent = {"driver": 0.0, "thread_cpu": 0.0}

    def timed(function):
        def wrapper(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                if threading.current_thread() is threading.main_thread():
                    spent["driver"] += time.perf_counter() - started
                else:  # the trackers' thread: the CPU it takes from the machine
                    spent["thread_cpu"] += time.thread_time() - cpu

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
        "driver_s": spent["driver"],
        "thread_cpu_s": spent["thread_cpu"],
        "cpus": os.cpu_count(),
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
                server_cpu = server.cpu_seconds()
                walls[tracked] = run_child(job | {"uri": server.uri if tracked else None}, c)
                walls[tracked]["server_cpu_s"] = server.cpu_seconds() - server_cpu
            plain, tracked = walls[False], walls[True]
            rows.append(
                {
                    "seed": seed,
                    "first": "plain" if i % 2 == 0 else "tracked",
                    "plain_s": plain["wall_s"],
                    "tracked_s": tracked["wall_s"],
                    "driver_s": tracked["driver_s"],
                    "thread_cpu_s": tracked["thread_cpu_s"],
                    "server_cpu_s": tracked["server_cpu_s"],
                    "idle_server_cpu_s": plain["server_cpu_s"],  # the server, not used
                    "cpus": tracked["cpus"],
                    "trials": tracked["trials"],
                }
            )
    finally:
        server.stop()
    return {
        "sizes": {"search": "python -m search.run's defaults", "seeds": c.seeds},
        "per_seed": rows,
        "machine_share": summary([machine_share(r) for r in rows]),
        "driver_share": summary([r["driver_s"] / r["tracked_s"] for r in rows]),
        "wall_overhead": summary([r["tracked_s"] / r["plain_s"] - 1 for r in rows]),
    }


def machine_share(row: dict) -> float:
    """The tracked run's CPU capacity that tracking took: the server's and the trackers'
    thread's CPU time over wall time times cores."""
    return (row["server_cpu_s"] + row["thread_cpu_s"]) / (row["tracked_s"] * row["cpus"])


def goals(r: dict) -> list[dict]:
    share, driver, wall = r["machine_share"], r["driver_share"], r["wall_overhead"]
    return [
        goal(
            f"tracking (MLflow, local server) costs at most {GOAL:.0%} of the default "
            "search's wall time (median of the seeds)",
            f"it took {stat(share, '.2%')} of the machine's CPU capacity over the tracked "
            f"run (server and trackers' thread), and the driver spent {stat(driver, '.2%')} "
            f"of the wall time in the trackers' calls; wall time tracked against not, whose "
            f"searches differ in the trials they ran: {stat(wall, '+.1%')}",
            share["median"] + driver["median"] <= GOAL,
        )
    ]


def render(r: dict) -> str:
    rows = [
        {
            "seed": x["seed"],
            "ran first": x["first"],
            "not tracked s": fmt(x["plain_s"], ".0f"),
            "tracked s": fmt(x["tracked_s"], ".0f"),
            "MLflow server CPU s": fmt(x["server_cpu_s"], ".1f"),
            "trackers' thread CPU s": fmt(x["thread_cpu_s"], ".1f"),
            "share of the machine": f"{machine_share(x):.2%}",
            "driver in trackers' calls s": fmt(x["driver_s"], ".1f"),
        }
        for x in r["per_seed"]
    ]
    return "\n\n".join(
        [
            "The default search (`python -m search.run`, 50 trials, report included) per "
            "seed, once with `--track mlflow=http://127.0.0.1:PORT` (an `mlflow server` on "
            "SQLite, started for the benchmark on this machine) and once without, in "
            "alternating order. The share of the machine is the server's and the trackers' "
            "thread's CPU time over the tracked run's wall time times its cores; the "
            "driver's time in the trackers' calls is on its critical path. Searches of one "
            "seed differ in the work they do (ASHA judges on training seconds), so their "
            "wall times are shown, not judged.",
            table(rows),
        ]
    )
